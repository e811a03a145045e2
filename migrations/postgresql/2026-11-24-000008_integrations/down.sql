DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_subscriptions;
DROP TABLE xapi_statements;
DROP TABLE xapi_account_links;
DROP TABLE xapi_activity_mappings;
DROP TABLE api_client_tokens;
DROP TABLE api_clients;
