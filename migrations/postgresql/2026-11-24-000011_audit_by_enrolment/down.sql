DROP INDEX audit_log_enrolment;
