DROP TABLE audit_text_keys;
