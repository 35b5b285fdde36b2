//! `/api/v1/districts`, `/api/v1/organisations`, `/api/v1/services` and
//! `/api/v1/case-codes`: the case directory as the configuration has it now (a reload
//! replaces it whole). Read-only: the files are the admin's to edit.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{query_error, AdminState, ApiError};

/// `GET /api/v1/districts`.
pub async fn districts(State(s): State<AdminState>) -> Response {
    let d = s.directory.get();
    Json(json!({ "districts": d.districts })).into_response()
}

/// `GET /api/v1/services`.
pub async fn services(State(s): State<AdminState>) -> Response {
    let d = s.directory.get();
    Json(json!({ "services": d.services })).into_response()
}

/// `GET /api/v1/case-codes`: social categories, citizens' flags, dispositions.
pub async fn codes(State(s): State<AdminState>) -> Response {
    let d = s.directory.get();
    Json(json!({
        "social_categories": d.social_categories,
        "flags": d.flags,
        "dispositions": d.dispositions,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgQuery {
    service: Option<String>,
    district: Option<String>,
}

/// `GET /api/v1/organisations[?service=…&district=…]`: every organisation; with `service`
/// (and optionally `district`) also `suggested`, the id of the one an appeal for that
/// service from that district goes to (null when none does). Unknown ids are 422 naming
/// the parameter.
pub async fn organisations(
    State(s): State<AdminState>,
    q: Result<Query<OrgQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let d = s.directory.get();
    if let Some(district) = &q.district {
        if d.district(district).is_none() {
            return Err(ApiError::unprocessable(format!(
                "district: no district {district:?}"
            )));
        }
    }
    let mut body = json!({ "organisations": d.organisations });
    if let Some(service) = &q.service {
        if d.service(service).is_none() {
            return Err(ApiError::unprocessable(format!(
                "service: no service {service:?}"
            )));
        }
        body["suggested"] = json!(d
            .suggest(service, q.district.as_deref())
            .map(|o| o.id.clone()));
    }
    Ok(Json(body).into_response())
}
