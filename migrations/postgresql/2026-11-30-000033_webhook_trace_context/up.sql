-- Traces across nodes (issue 22): a queued webhook delivery keeps the W3C Trace Context
-- (`traceparent`, `tracestate`) of the change that produced its event, so the delivery,
-- sent later by whichever node's worker, continues that trace. Empty when tracing is off.
ALTER TABLE webhook_deliveries ADD COLUMN traceparent TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN tracestate TEXT;
