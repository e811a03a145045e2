DROP TABLE transferred_records;
DROP TABLE transfer_imports;
DROP TABLE trusted_services;
