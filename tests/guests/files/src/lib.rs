//! Test guest for `files` mounts: `GET /?path=P` answers the file at `P`,
//! `PUT /?path=P` writes the request body there, `GET /?list=D` answers
//! the names in folder `D`, one a line. A failing file call is a 500 whose
//! body is the error.

use kumo_sdk::{Request, Response};

fn handle(request: Request) -> Response {
    if let Some(dir) = kumo_sdk::query_param(&request, "list") {
        return match std::fs::read_dir(&dir) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .filter_map(|entry| entry.ok())
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                kumo_sdk::text_response(200, names.join("\n"))
            }
            Err(error) => kumo_sdk::text_response(500, format!("cannot list {dir}: {error}")),
        };
    }
    let Some(path) = kumo_sdk::query_param(&request, "path") else {
        return kumo_sdk::text_response(400, "pass ?path= or ?list=");
    };
    if request.method() == "PUT" {
        if let Some(parent) = std::path::Path::new(&path).parent()
            && !parent.exists()
            && let Err(error) = std::fs::create_dir_all(parent)
        {
            return kumo_sdk::text_response(
                500,
                format!("cannot create {}: {error}", parent.display()),
            );
        }
        match std::fs::write(&path, request.body()) {
            Ok(()) => kumo_sdk::text_response(200, "written"),
            Err(error) => kumo_sdk::text_response(500, format!("cannot write {path}: {error}")),
        }
    } else {
        match std::fs::read(&path) {
            Ok(bytes) => Response::new(bytes),
            Err(error) => kumo_sdk::text_response(500, format!("cannot read {path}: {error}")),
        }
    }
}

kumo_sdk::http_handler!(handle);
