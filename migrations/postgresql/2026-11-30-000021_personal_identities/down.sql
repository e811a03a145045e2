DROP TABLE personal_identities;
