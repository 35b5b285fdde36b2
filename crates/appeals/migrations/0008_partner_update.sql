-- Status both ways (issue 12, item 7): the origin reports its changes to an appeal it
-- forwarded (`partner_outbox.kind` 'update', POSTed to /api/v1/partner/appeals/{origin id}/update),
-- and the partner finds its copy by the origin's centre and appeal id. Portable SQL.
--
-- partner_inbox.kind now also holds 'update'; partner_outbox.kind 'update'. Nothing to
-- convert: existing rows keep their meaning.
CREATE INDEX partner_inbox_origin ON partner_inbox (origin_appeal_id, origin_centre, kind);
