//! Test guest for `files` mounts: `GET /?path=P` answers the file at `P`,
//! `PUT /?path=P` writes the request body there, `GET /?list=D` answers
//! the names in folder `D`, one a line. A failing file call is a 500 whose
//! body is the error.

use kumo_sdk::{Error, IntoResponse, Request, Response, StatusCode};

fn failed(message: String) -> Error {
    Error::new(StatusCode::INTERNAL_SERVER_ERROR, message)
}

fn handle(request: Request) -> Result<Response, Error> {
    if let Some(dir) = kumo_sdk::query_param(&request, "list") {
        let entries = std::fs::read_dir(&dir)
            .map_err(|error| failed(format!("cannot list {dir}: {error}")))?;
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        return Ok(names.join("\n").into_response());
    }
    let Some(path) = kumo_sdk::query_param(&request, "path") else {
        return Err(Error::new(StatusCode::BAD_REQUEST, "pass ?path= or ?list="));
    };
    if request.method() == "PUT" {
        if let Some(parent) = std::path::Path::new(&path).parent()
            && !parent.exists()
        {
            std::fs::create_dir_all(parent)
                .map_err(|error| failed(format!("cannot create {}: {error}", parent.display())))?;
        }
        std::fs::write(&path, request.body())
            .map_err(|error| failed(format!("cannot write {path}: {error}")))?;
        Ok("written".into_response())
    } else {
        let bytes =
            std::fs::read(&path).map_err(|error| failed(format!("cannot read {path}: {error}")))?;
        // The file's bytes as they are, with no content-type.
        Ok(Response::new(bytes))
    }
}

kumo_sdk::http_handler!(handle);
