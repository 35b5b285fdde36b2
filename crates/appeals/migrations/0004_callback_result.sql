-- Callback attempts (issue 5 item 3): the result of the last attempt to call the number back
-- (answered, no_answer, busy, failed, operator_left), next to its status and attempt count.
ALTER TABLE callbacks ADD COLUMN last_result TEXT;
