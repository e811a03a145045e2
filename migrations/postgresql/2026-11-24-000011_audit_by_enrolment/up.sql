-- A trainee's dossier and the history of an enrolment read its audit entries in order.
-- Without this they scanned the whole audit log, which grows with every trainee's
-- every change: the dossier's time grew with the size of the service.
CREATE INDEX audit_log_enrolment ON audit_log(enrolment_id, seq);
