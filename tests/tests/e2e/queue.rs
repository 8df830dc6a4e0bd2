//! Media jobs through the gateway, as a client would queue and poll them: the quota is taken
//! once per job (an `Idempotency-Key` replay returns the first job), bad input is named before
//! any quota is taken, another creator's job does not exist for you, and a svc-queue outage is
//! a 503 for the queue alone.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn resize(width: u32) -> Value {
    json!({
        "operation": "resize_image",
        "inputUrl": "https://cdn.example.com/photo.png",
        "params": {"width": width},
        "creatorProfileId": "0b7c6f5e-3f1a-4f7e-9a55-2d3c4b5a6e7f",
    })
}

async fn enqueue(app: &TestApp, body: Value, token: &str, key: Option<&str>) -> Response {
    let mut request = app
        .client
        .post(app.url("/api/queue/media"))
        .bearer_auth(token)
        .json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    app.send(request).await
}

#[tokio::test]
async fn a_creator_queues_a_job_once_and_polls_it() {
    let app = spawn_app().await;
    let (_, creator) = app.new_creator("queue@genie.test").await;

    let queued = enqueue(&app, resize(640), &creator, Some("photo-1")).await;
    assert_eq!(queued.status, StatusCode::OK, "{:?}", queued.body);
    assert_eq!(
        (queued.body["ok"].clone(), queued.body["replayed"].clone()),
        (json!(true), json!(false))
    );
    let id = queued.body["jobId"].as_str().unwrap().to_owned();
    let job = &queued.body["job"];
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["status"], "queued");
    assert_eq!(job["operation"], "resize_image");
    assert_eq!(job["params"], json!({"width": 640}));
    assert_eq!(
        job["input"],
        json!({"input_url": "https://cdn.example.com/photo.png"})
    );
    assert_eq!(
        (job["priority"].clone(), job["max_attempts"].clone()),
        (json!(10), json!(5))
    );

    let again = enqueue(&app, resize(640), &creator, Some("photo-1")).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(again.body["jobId"], id.as_str());
    assert_eq!(again.body["replayed"], true);
    let reused = enqueue(&app, resize(320), &creator, Some("photo-1")).await;
    assert_eq!(reused.status, StatusCode::CONFLICT, "{:?}", reused.body);
    assert_eq!(reused.body["reason"], "idempotency_key_reused");
    let usage = app.get("/api/usage", Some(&creator)).await;
    assert_eq!(
        usage.body["usage"]["ai_media_ops"]["used"], 1,
        "{:?}",
        usage.body
    );

    let polled = app
        .get(&format!("/api/queue/jobs/{id}"), Some(&creator))
        .await;
    assert_eq!(polled.status, StatusCode::OK, "{:?}", polled.body);
    assert_eq!(polled.body["job"], queued.body["job"]);
    let listed = app
        .get("/api/queue/jobs?status=queued&limit=10", Some(&creator))
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_eq!(listed.body["meta"]["filter_count"], 1);
    assert_eq!(listed.body["data"][0]["id"], id.as_str());

    let (_, other) = app.new_creator("other-queue@genie.test").await;
    let hidden = app
        .get(&format!("/api/queue/jobs/{id}"), Some(&other))
        .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{:?}", hidden.body);
    assert_eq!(hidden.body["reason"], "not_found");
    let theirs = app.get("/api/queue/jobs", Some(&other)).await;
    assert_eq!(theirs.body["meta"]["filter_count"], 0);
    let anonymous = app.get("/api/queue/jobs", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_jobs_are_named_before_any_quota_is_taken() {
    let app = spawn_app().await;
    let (_, creator) = app.new_creator("bad-jobs@genie.test").await;
    let mut cases = vec![
        (
            json!({"operation": "sharpen", "inputUrl": "https://a.example/x.png", "creatorProfileId": "0b7c6f5e-3f1a-4f7e-9a55-2d3c4b5a6e7f"}),
            "operation",
            "invalid_body",
        ),
        (
            json!({"operation": "trim_video", "inputUrl": "https://a.example/x.mp4", "params": {"start": 0, "duration": 2}, "creatorProfileId": "0b7c6f5e-3f1a-4f7e-9a55-2d3c4b5a6e7f"}),
            "operation",
            "unsupported_operation",
        ),
        (
            json!({"inputUrl": "https://a.example/x.png", "creatorProfileId": "0b7c6f5e-3f1a-4f7e-9a55-2d3c4b5a6e7f"}),
            "operation",
            "missing_field",
        ),
        (
            json!({"operation": "resize_image", "inputUrl": "https://a.example/x.png"}),
            "creator_profile_id",
            "missing_field",
        ),
        (
            json!({"operation": "resize_image", "inputUrl": "http://127.0.0.1:5432/", "params": {"width": 4}, "creatorProfileId": "0b7c6f5e-3f1a-4f7e-9a55-2d3c4b5a6e7f"}),
            "input_url",
            "invalid_body",
        ),
        (
            json!({"operation": "resize_image", "inputUrl": "https://a.example/x.png", "params": [640], "creatorProfileId": "0b7c6f5e-3f1a-4f7e-9a55-2d3c4b5a6e7f"}),
            "params",
            "invalid_body",
        ),
        (
            json!({"operation": "resize_image", "inputUrl": "https://a.example/x.png", "params": {"width": "wide"}, "creatorProfileId": "0b7c6f5e-3f1a-4f7e-9a55-2d3c4b5a6e7f"}),
            "params.width",
            "invalid_body",
        ),
        (
            json!({"operation": "resize_image", "inputUrl": "https://a.example/x.png", "params": {"width": 9}, "priority": "high", "creatorProfileId": "0b7c6f5e-3f1a-4f7e-9a55-2d3c4b5a6e7f"}),
            "priority",
            "invalid_body",
        ),
    ];
    // A video operation is unsupported only where ffmpeg is missing.
    if svc_queue::operations::Capabilities::detect().video {
        cases.remove(1);
    }
    for (body, field, reason) in cases {
        let refused = enqueue(&app, body.clone(), &creator, None).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{body}: {:?}",
            refused.body
        );
        assert_eq!(
            (
                refused.body["field"].clone(),
                refused.body["reason"].clone()
            ),
            (json!(field), json!(reason)),
            "{body}"
        );
    }
    for query in ["status=done", "limit=abc", "limit=501", "offset=-1"] {
        let refused = app
            .get(&format!("/api/queue/jobs?{query}"), Some(&creator))
            .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{query}: {:?}",
            refused.body
        );
    }
    let usage = app.get("/api/usage", Some(&creator)).await;
    assert_eq!(
        usage.body["usage"]["ai_media_ops"]["used"], 0,
        "{:?}",
        usage.body
    );
}

#[tokio::test]
async fn a_queue_outage_is_a_503_for_the_queue_alone() {
    let mut app = spawn_app().await;
    let (_, creator) = app.new_creator("queue-outage@genie.test").await;
    app.stop_queue().await;
    let down = enqueue(&app, resize(640), &creator, None).await;
    assert_eq!(
        down.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        down.body
    );
    assert_eq!(down.body["reason"], "service_unavailable");
    let jobs = app.get("/api/queue/jobs", Some(&creator)).await;
    assert_eq!(jobs.status, StatusCode::SERVICE_UNAVAILABLE);
    let usage = app.get("/api/usage", Some(&creator)).await;
    assert_eq!(usage.status, StatusCode::OK, "{:?}", usage.body);
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 2) as u8, 90])
    });
    let mut bytes = Vec::new();
    picture
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

async fn upload(app: &TestApp, token: &str, name: &str, bytes: Vec<u8>) -> Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_owned())
            .mime_str("application/octet-stream")
            .unwrap(),
    );
    app.send(
        app.client
            .post(app.url("/api/files"))
            .bearer_auth(token)
            .multipart(form),
    )
    .await
}

#[tokio::test]
async fn an_uploaded_photo_is_watermarked_by_the_worker_and_fetched_by_its_owner_only() {
    let app = spawn_app_with_worker().await;
    let (_, creator) = app.new_creator("files@genie.test").await;
    let (_, other) = app.new_creator("other-files@genie.test").await;

    let stored = upload(&app, &creator, "beach.png", png(100, 60)).await;
    assert_eq!(stored.status, StatusCode::OK, "{:?}", stored.body);
    let file = &stored.body["file"];
    assert_eq!(
        (
            file["content_type"].clone(),
            file["width"].clone(),
            file["height"].clone(),
            file["filename"].clone()
        ),
        (
            json!("image/png"),
            json!(100),
            json!(60),
            json!("beach.png")
        )
    );
    let input_id = file["id"].as_str().unwrap().to_owned();

    let body = json!({
        "operation": "apply_watermark",
        "inputFileId": input_id,
        "params": {"text": "@genie", "position": "bottom-right", "opacity": 80},
        "creatorProfileId": "0b7c6f5e-3f1a-4f7e-9a55-2d3c4b5a6e7f",
    });
    let queued = enqueue(&app, body, &creator, None).await;
    assert_eq!(queued.status, StatusCode::OK, "{:?}", queued.body);
    assert_eq!(
        queued.body["job"]["input"],
        json!({"input_file_id": input_id})
    );
    let id = queued.body["jobId"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let job = loop {
        let polled = app
            .get(&format!("/api/queue/jobs/{id}"), Some(&creator))
            .await;
        let job = polled.body["job"].clone();
        if job["status"] == "completed" {
            break job;
        }
        assert!(
            std::time::Instant::now() < deadline && job["status"] != "failed",
            "{job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["progress"], 100);
    let result = &job["result"];
    assert_eq!(
        (result["width"].clone(), result["height"].clone()),
        (json!(100), json!(60))
    );
    let output_url = result["output_url"].as_str().unwrap();

    let fetched = app
        .client
        .get(app.url(output_url))
        .bearer_auth(&creator)
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(fetched.headers()["content-type"], "image/png");
    assert_eq!(fetched.headers()["x-content-type-options"], "nosniff");
    let bytes = fetched.bytes().await.unwrap();
    assert_eq!(result["bytes"], json!(bytes.len()));
    let watermarked = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let original = image::load_from_memory(&png(100, 60)).unwrap().to_rgb8();
    assert_eq!(watermarked.dimensions(), (100, 60));
    assert_ne!(
        watermarked.get_pixel(90, 55),
        original.get_pixel(90, 55),
        "the bottom-right corner carries the mark"
    );
    assert_eq!(watermarked.get_pixel(2, 2), original.get_pixel(2, 2));

    for path in [output_url.to_owned(), format!("/api/files/{input_id}")] {
        let hidden = app.get(&path, Some(&other)).await;
        assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{:?}", hidden.body);
        assert_eq!(hidden.body["reason"], "not_found");
    }
    let anonymous = app.get(output_url, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let theirs = enqueue(
        &app,
        json!({"operation": "strip_metadata", "inputFileId": input_id, "creatorProfileId": "0b7c6f5e-3f1a-4f7e-9a55-2d3c4b5a6e7f"}),
        &other,
        None,
    )
    .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{:?}", theirs.body);
    assert_eq!(theirs.body["field"], "input_file_id");
}

#[tokio::test]
async fn uploads_that_are_not_media_are_refused_by_what_they_hold() {
    let app = spawn_app().await;
    let (_, creator) = app.new_creator("bad-files@genie.test").await;
    let html = upload(&app, &creator, "photo.png", b"<html><script>".to_vec()).await;
    assert_eq!(
        html.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{:?}",
        html.body
    );
    assert_eq!(
        (html.body["reason"].clone(), html.body["field"].clone()),
        (json!("unsupported_media_type"), json!("file"))
    );
    let json_body = app
        .send(
            app.client
                .post(app.url("/api/files"))
                .bearer_auth(&creator)
                .json(&json!({"file": "x"})),
        )
        .await;
    assert_eq!(json_body.status, StatusCode::BAD_REQUEST);
    assert_eq!(json_body.body["field"], "file");
    let empty_form = app
        .send(
            app.client
                .post(app.url("/api/files"))
                .bearer_auth(&creator)
                .multipart(reqwest::multipart::Form::new().text("note", "hello")),
        )
        .await;
    assert_eq!(
        (empty_form.status, empty_form.body["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("file"))
    );
    let anonymous = app
        .send(
            app.client
                .post(app.url("/api/files"))
                .multipart(reqwest::multipart::Form::new().text("file", "x")),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn posts_fans_stats_and_the_taxonomy_as_a_client_sees_them() {
    let app = spawn_app().await;
    let (_, creator) = app.new_creator("scheduler@genie.test").await;
    let admin = app.admin_token().await;

    let stats = app.get("/api/queue/stats", Some(&creator)).await;
    assert_eq!(stats.status, StatusCode::OK, "{:?}", stats.body);
    for queue in ["media-jobs", "scrape-jobs", "onboarding-jobs"] {
        assert!(stats.body["stats"][queue]["waiting"].is_i64(), "{queue}");
    }
    assert!(stats.body["taxonomy_cache"]["hits"].is_u64());

    let classified = app
        .post(
            "/api/queue/taxonomy/classify",
            json!({"tags": ["Lingerie", "#BTS", "nothing-known"]}),
            Some(&creator),
        )
        .await;
    assert_eq!(classified.status, StatusCode::OK, "{:?}", classified.body);
    let concepts: Vec<&str> = classified.body["concepts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|concept| concept["concept"].as_str().unwrap())
        .collect();
    assert!(concepts.contains(&"Intimacy Level") && concepts.contains(&"Content Type"));
    assert_eq!(classified.body["unmatched"], json!(["nothing known"]));
    for body in [json!({}), json!({"tags": "lingerie"}), json!({"tags": []})] {
        let refused = app
            .post("/api/queue/taxonomy/classify", body.clone(), Some(&creator))
            .await;
        assert_error(&refused, StatusCode::BAD_REQUEST);
        assert_eq!(refused.body["field"], "tags", "{body}");
    }
    // The role is checked before the body is read.
    let not_admin = app
        .client
        .post(app.url("/api/queue/taxonomy/invalidate"))
        .bearer_auth(&creator)
        .header("content-type", "application/json")
        .body("{not json");
    assert_error(&app.send(not_admin).await, StatusCode::FORBIDDEN);
    let busted = app
        .post("/api/queue/taxonomy/invalidate", json!({}), Some(&admin))
        .await;
    assert_eq!(busted.status, StatusCode::OK, "{:?}", busted.body);
    assert_eq!(busted.body["taxonomy_cache"]["size"], 0);

    let fans = app.get("/api/fans", Some(&creator)).await;
    assert_eq!(fans.status, StatusCode::OK, "{:?}", fans.body);
    assert_eq!(
        (
            fans.body["data"].clone(),
            fans.body["meta"]["filter_count"].clone()
        ),
        (json!([]), json!(0))
    );
    let bad_limit = app.get("/api/fans?limit=abc", Some(&creator)).await;
    assert_error(&bad_limit, StatusCode::BAD_REQUEST);
    assert_eq!(bad_limit.body["field"], "limit");

    let tomorrow = (chrono::Utc::now() + chrono::TimeDelta::days(1)).to_rfc3339();
    let post = json!({
        "creatorProfileId": "0b7c6f5e-3f1a-4f7e-9a55-2d3c4b5a6e7f",
        "scheduledFor": tomorrow,
        "caption": "New set at 8 🌙",
        "platformSpecificConfig": {"price": 9.99},
    });
    let schedule = |body: Value| {
        app.send(
            app.client
                .post(app.url("/api/posts/schedule"))
                .bearer_auth(&creator)
                .header("Idempotency-Key", "post-1")
                .json(&body),
        )
    };
    let scheduled = schedule(post.clone()).await;
    assert_eq!(scheduled.status, StatusCode::OK, "{:?}", scheduled.body);
    assert_eq!(scheduled.body["replayed"], false);
    let stored = &scheduled.body["post"];
    assert_eq!(
        (
            stored["status"].clone(),
            stored["platform"].clone(),
            stored["caption"].clone()
        ),
        (
            json!("pending"),
            json!("onlyfans"),
            json!("New set at 8 🌙")
        )
    );
    assert_eq!(stored["platform_specific_config"], json!({"price": 9.99}));
    assert!(stored["job_id"].is_null());
    let again = schedule(post.clone()).await;
    assert_eq!(
        (
            again.body["replayed"].clone(),
            again.body["post"]["id"].clone()
        ),
        (json!(true), stored["id"].clone())
    );
    for (change, field) in [
        (json!({"scheduledFor": null}), "scheduled_for"),
        (json!({"scheduledFor": "next friday"}), "scheduled_for"),
        (
            json!({"platformSpecificConfig": [1]}),
            "platform_specific_config",
        ),
        (json!({"creatorProfileId": "nope"}), "creator_profile_id"),
    ] {
        // A null removes the field: a missing field goes by its documented name.
        let mut body = post.clone();
        let fields = body.as_object_mut().unwrap();
        for (name, value) in change.as_object().unwrap() {
            match value {
                Value::Null => fields.remove(name),
                value => fields.insert(name.clone(), value.clone()),
            };
        }
        let refused = schedule(body).await;
        assert_error(&refused, StatusCode::BAD_REQUEST);
        assert_eq!(refused.body["field"], field, "{change}");
    }
    let posts = app.get("/api/posts?status=pending", Some(&creator)).await;
    assert_eq!(posts.status, StatusCode::OK, "{:?}", posts.body);
    assert_eq!(posts.body["meta"]["filter_count"], 1);
    assert_eq!(posts.body["data"][0]["id"], stored["id"]);
    let bad_status = app.get("/api/posts?status=sent", Some(&creator)).await;
    assert_error(&bad_status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_status.body["field"], "status");
    let usage = app.get("/api/usage", Some(&creator)).await;
    assert_eq!(usage.body["usage"]["scheduled_posts"]["used"], 1);

    let path = format!("/api/posts/{}/cancel", stored["id"].as_str().unwrap());
    let (_, stranger) = app.new_creator("not-the-scheduler@genie.test").await;
    assert_error(
        &app.post(&path, json!({}), Some(&stranger)).await,
        StatusCode::NOT_FOUND,
    );
    let cancelled = app.post(&path, json!({}), Some(&creator)).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["post"]["status"], "cancelled");
    let usage = app.get("/api/usage", Some(&creator)).await;
    assert_eq!(usage.body["usage"]["scheduled_posts"]["used"], 0);
}
