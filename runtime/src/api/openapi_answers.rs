//! The answers every operation of the OpenAPI document shares, added in one
//! place rather than on each handler: the 401 of the token check, the 400,
//! 415 and 422 of the JSON body and query extractors (`extract.rs`), the
//! 400 of a malformed function or alias name in the path (with the name
//! rules as patterns); and the schema fixes utoipa cannot be told about.
//! `tests/integration/schemathesis.rs` checks the result against the
//! server.

use serde_json::{Value, json};

/// Function names, as `model::target` checks them.
const FUNCTION_NAME_PATTERN: &str = "^[a-z][a-z0-9-]{0,63}$";
/// Alias names, as `model::target` checks them.
const ALIAS_NAME_PATTERN: &str = "^[a-z][a-z0-9_-]{0,63}$";

/// Adds the shared answers and path patterns to every operation of
/// `document` (an OpenAPI 3.1 document as JSON).
pub(super) fn complete(document: &mut Value) {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        })
    };
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for operations in paths.values_mut() {
        let Some(operations) = operations.as_object_mut() else {
            continue;
        };
        for operation in operations.values_mut() {
            let public = operation
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|schemes| schemes.iter().any(|scheme| scheme == &json!({})));
            let json_body = operation
                .pointer("/requestBody/content/application~1json")
                .is_some();
            let mut answers: Vec<(&str, Value)> = Vec::new();
            if !public {
                answers.push(("401", error("No or a wrong `Authorization: Bearer` token")));
            }
            if json_body {
                answers.push(("400", error("The body is not JSON")));
                answers.push((
                    "415",
                    error("The body is not sent as `content-type: application/json`"),
                ));
                answers.push(("422", error("The JSON does not have the documented shape")));
            }
            let mut parameters_checked = false;
            if let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            {
                for parameter in parameters {
                    parameters_checked |= parameter["in"] == "query";
                    let pattern = match (parameter["in"].as_str(), parameter["name"].as_str()) {
                        (Some("path"), Some("name")) => FUNCTION_NAME_PATTERN,
                        (Some("path"), Some("alias")) => ALIAS_NAME_PATTERN,
                        _ => continue,
                    };
                    parameters_checked = true;
                    if let Some(schema) = parameter.get_mut("schema").and_then(Value::as_object_mut)
                    {
                        schema.insert("pattern".to_owned(), pattern.into());
                    }
                }
            }
            if parameters_checked {
                answers.push(("400", error("A malformed path or query parameter")));
            }
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for (status, answer) in answers {
                responses.entry(status.to_owned()).or_insert(answer);
            }
        }
    }
    // A schema refusing unknown keys (`deny_unknown_fields`) cannot be one
    // part of an `allOf`: the other parts' keys are unknown to it. Triggers
    // are such compositions (their spec and `kind`, `id`, `created_at`).
    let composed: Vec<String> = document
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|schemas| {
            let text = Value::Object(schemas.clone()).to_string();
            schemas
                .keys()
                .filter(|name| {
                    text.contains(&format!(
                        "\"allOf\":[{{\"$ref\":\"#/components/schemas/{name}\""
                    ))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for name in composed {
        if let Some(schema) = document
            .pointer_mut(&format!("/components/schemas/{name}"))
            .and_then(Value::as_object_mut)
        {
            schema.remove("additionalProperties");
        }
    }
}
