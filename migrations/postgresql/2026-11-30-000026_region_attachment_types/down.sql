DROP TABLE region_attachment_types;
