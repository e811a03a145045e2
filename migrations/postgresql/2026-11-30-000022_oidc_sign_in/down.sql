DROP TABLE oidc_links;
DROP TABLE oidc_flows;
