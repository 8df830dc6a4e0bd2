//! The skills catalogue through the gateway, as a client would use it: an administrator writes
//! skills, a creator lists, searches (with a typo), follows related skills and activates skills
//! for a task; roles are checked before the body, bad input is named, and a svc-skills outage is
//! a 503 that does not take the rest of the API with it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn skill(name: &str, category: &str, tags: &[&str], description: &str, related: &[&str]) -> Value {
    json!({
        "name": name,
        "category": category,
        "tags": tags,
        "description": description,
        "content": format!("# {name}\n\n{description} Step by step, with examples."),
        "related": related,
    })
}

#[tokio::test]
async fn an_administrator_writes_skills_and_a_creator_finds_and_activates_them() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, creator) = app.new_creator("skills@genie.test").await;

    let hooks = skill(
        "caption-hooks",
        "captions",
        &["hooks", "captions"],
        "Write a first line that stops the scroll.",
        &[],
    );
    let created = app.post("/api/skills", hooks.clone(), Some(&admin)).await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    assert_eq!(created.body["success"], true);
    assert_eq!(created.body["data"]["name"], "caption-hooks");
    let hooks_id = created.body["data"]["id"].as_str().unwrap().to_owned();
    for other in [
        skill(
            "posting-schedule",
            "scheduling",
            &["schedule", "timing"],
            "Choose the hours your fans are awake to post.",
            &["caption-hooks"],
        ),
        skill(
            "price-a-bundle",
            "pricing",
            &["pricing", "bundles"],
            "Set a bundle price from what fans already bought.",
            &[],
        ),
    ] {
        let created = app.post("/api/skills", other, Some(&admin)).await;
        assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    }

    // The same name again is a conflict naming the field.
    let again = app.post("/api/skills", hooks, Some(&admin)).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
    assert_eq!(again.body["reason"], "skill_name_taken");
    assert_eq!(again.body["field"], "name");

    // A creator reads: by id, by name, filtered and paged lists.
    let by_id = app
        .get(&format!("/api/skills/{hooks_id}"), Some(&creator))
        .await;
    assert_eq!(by_id.status, StatusCode::OK, "{:?}", by_id.body);
    let by_name = app.get("/api/skills/caption-hooks", Some(&creator)).await;
    assert_eq!(by_name.body["data"]["id"], hooks_id.as_str());
    let page = app
        .get("/api/skills?limit=2&sort=name", Some(&creator))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    let names: Vec<_> = page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["caption-hooks", "posting-schedule"]);
    assert_eq!(page.body["meta"]["total_count"], 3);
    assert_eq!(page.body["meta"]["filter_count"], 3);
    let pricing = app
        .get("/api/skills?category=pricing", Some(&creator))
        .await;
    assert_eq!(pricing.body["meta"]["filter_count"], 1);
    assert_eq!(pricing.body["data"][0]["name"], "price-a-bundle");

    // A typo still finds the skill, with a snippet, a score and the correction made.
    let search = app
        .post(
            "/api/skills/search",
            json!({"query": "captoin hooks"}),
            Some(&creator),
        )
        .await;
    assert_eq!(search.status, StatusCode::OK, "{:?}", search.body);
    assert_eq!(
        search.body["data"][0]["name"], "caption-hooks",
        "{:?}",
        search.body
    );
    assert!(search.body["data"][0]["score"].as_f64().unwrap() > 0.0);
    assert!(
        search.body["data"][0]["snippet"]
            .as_str()
            .unwrap()
            .contains("<mark>caption</mark>"),
        "{:?}",
        search.body
    );
    assert_eq!(
        search.body["corrections"],
        json!([{"from": "captoin", "to": "caption"}])
    );

    // The explicit edge, seen from either end.
    let related = app
        .get("/api/skills/caption-hooks/related", Some(&creator))
        .await;
    assert_eq!(related.status, StatusCode::OK, "{:?}", related.body);
    let neighbour = &related.body["data"][0];
    assert_eq!(neighbour["name"], "posting-schedule");
    assert!(
        neighbour["kinds"]
            .as_array()
            .unwrap()
            .contains(&json!("explicit")),
        "{neighbour}"
    );

    // Activation for a task that names no tag, explained; a task nothing fits is an empty answer.
    let activated = app
        .post(
            "/api/skills/activate",
            json!({"task": "a first line for my caption that stops people scrolling"}),
            Some(&creator),
        )
        .await;
    assert_eq!(activated.status, StatusCode::OK, "{:?}", activated.body);
    let best = &activated.body["data"][0];
    assert_eq!(best["name"], "caption-hooks", "{:?}", activated.body);
    assert!(
        best["activation_score"].as_f64().unwrap() >= activated.body["threshold"].as_f64().unwrap()
    );
    assert!(
        !best["why"]["matched_words"].as_array().unwrap().is_empty(),
        "{best}"
    );
    let nothing = app
        .post(
            "/api/skills/activate",
            json!({"task": "quantum chromodynamics lattice"}),
            Some(&creator),
        )
        .await;
    assert_eq!(nothing.status, StatusCode::OK, "{:?}", nothing.body);
    assert_eq!(nothing.body["data"], json!([]));

    // The administrator changes and deletes; the deleted skill is gone.
    let changed = app
        .patch(
            "/api/skills/price-a-bundle",
            json!({"tags": ["pricing", "bundles", "offers"]}),
            &admin,
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(
        changed.body["data"]["tags"],
        json!(["pricing", "bundles", "offers"])
    );
    let deleted = app
        .send(
            app.client
                .delete(app.url("/api/skills/price-a-bundle"))
                .bearer_auth(&admin),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    let gone = app.get("/api/skills/price-a-bundle", Some(&creator)).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{:?}", gone.body);
    assert_eq!(gone.body["reason"], "not_found");
}

#[tokio::test]
async fn the_catalogue_checks_the_role_before_the_body_and_names_bad_fields() {
    let app = spawn_app().await;
    let (_, creator) = app.new_creator("not-an-admin@genie.test").await;

    // A creator may not write, whatever the body.
    let forbidden = app
        .post("/api/skills", json!("not even an object"), Some(&creator))
        .await;
    assert_eq!(
        forbidden.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        forbidden.body
    );
    // Nobody reads without a token.
    let anonymous = app.get("/api/skills", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    for (query, field) in [
        ("limit=501", "limit"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
        ("sort=name;drop table skills.skills", "sort"),
        ("tags_mode=some", "tags_mode"),
    ] {
        let refused = app
            .get(&format!("/api/skills?{query}"), Some(&creator))
            .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{query}: {:?}",
            refused.body
        );
        assert_eq!(refused.body["field"], field, "{query}: {:?}", refused.body);
    }
    for (body, field) in [
        (json!({}), "query"),
        (json!({"query": "   "}), "query"),
        (json!({"query": "hooks", "limit": 0}), "limit"),
        (json!({"query": "hooks\u{0}"}), "query"),
    ] {
        let refused = app
            .post("/api/skills/search", body.clone(), Some(&creator))
            .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{body}: {:?}",
            refused.body
        );
        assert_eq!(refused.body["field"], field, "{body}: {:?}", refused.body);
    }
}

#[tokio::test]
async fn a_skills_outage_is_a_503_for_skills_alone() {
    let mut app = spawn_app().await;
    let (_, creator) = app.new_creator("outage@genie.test").await;
    app.stop_skills().await;

    let down = app.get("/api/skills", Some(&creator)).await;
    assert_eq!(
        down.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        down.body
    );
    assert_eq!(down.body["reason"], "service_unavailable");
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    // The rest of the API goes on.
    let usage = app.get("/api/usage", Some(&creator)).await;
    assert_eq!(usage.status, StatusCode::OK, "{:?}", usage.body);
}
