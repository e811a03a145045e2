DROP TABLE account_erasures;
