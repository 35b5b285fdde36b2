//! What a change did, for its audit line ([`super::AdminState::audit`] writes it): the
//! fields that differ between a record before and after the change.

use serde_json::{json, Map, Value};

/// Fields that change on every edit and say nothing about it.
const BOOKKEEPING: &[&str] = &["version", "updated_at", "events", "appeals"];

/// The top-level fields of two JSON objects that differ: `{ "from", "to" }` for the fields
/// in `shown`, `{ "changed": true }` for the others (personal data: names, numbers,
/// addresses, free text — the audit log says that it changed, the record keeps the text).
pub(crate) fn changes(before: &Value, after: &Value, shown: &[&str]) -> Map<String, Value> {
    let empty = Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Map::new();
    for k in keys {
        if BOOKKEEPING.contains(&k.as_str()) {
            continue;
        }
        let (b, a) = (
            before.get(k).unwrap_or(&Value::Null),
            after.get(k).unwrap_or(&Value::Null),
        );
        if b == a {
            continue;
        }
        let entry = if shown.contains(&k.as_str()) {
            json!({ "from": b, "to": a })
        } else {
            json!({ "changed": true })
        };
        out.insert(k.clone(), entry);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_differences_and_personal_text_hidden() {
        let before = json!({ "status": "new", "notes": "a", "version": 1, "same": 2 });
        let after = json!({ "status": "done", "notes": "b", "version": 2, "same": 2, "new": 1 });
        let c = changes(&before, &after, &["status"]);
        assert_eq!(
            Value::Object(c),
            json!({
                "status": { "from": "new", "to": "done" },
                "notes": { "changed": true },
                "new": { "changed": true },
            })
        );
    }
}
