//! svc-skills over real gRPC on a random port, against a fresh PostgreSQL database per test,
//! with a clock the tests move.
// Test code: a helper of these tests that cannot do its job fails the test, as an assertion
// would. (clippy.toml allows this inside test functions only, not in the helpers beside them.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use common::identity::Identity;
use common::testing::{
    self, ManualClock, TestService, administrator, creator, fresh_database, request, start_service,
    status_field as field,
};
use proto::skills::v1 as pb;
use proto::skills::v1::skills_client::SkillsClient;
use svc_skills::{Clock, Config};
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

struct TestSkills {
    _service: TestService,
    client: SkillsClient<Channel>,
    clock: Arc<ManualClock>,
    config: Config,
}

async fn spawn_skills(seed: bool) -> TestSkills {
    let database = fresh_database().await;
    let mut config = Config::local(database.url.clone(), testing::internal_token());
    config.seed = seed;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap(),
    ));
    let serving_clock: Arc<dyn Clock> = clock.clone();
    let serving = config.clone();
    let service = start_service(|listener, stop| {
        svc_skills::run_with_clock(serving, listener, stop, serving_clock)
    })
    .await;
    TestSkills {
        client: SkillsClient::new(service.channel.clone()),
        _service: service,
        clock,
        config,
    }
}

fn catalogue_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("catalogue")
}

fn list(
    category: &str,
    tags: &[&str],
    mode: &str,
    limit: Option<u32>,
    offset: u32,
    sort: &str,
) -> pb::ListSkillsRequest {
    pb::ListSkillsRequest {
        category: category.into(),
        tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
        tags_mode: mode.into(),
        limit,
        offset,
        sort: sort.into(),
    }
}

impl TestSkills {
    async fn list(&self, body: pb::ListSkillsRequest) -> Result<pb::SkillPage, tonic::Status> {
        let mut client = self.client.clone();
        client
            .list_skills(request(body, &creator(Uuid::new_v4())))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn search(
        &self,
        query: &str,
        limit: Option<u32>,
    ) -> Result<pb::SearchResults, tonic::Status> {
        let mut client = self.client.clone();
        let body = pb::SearchRequest {
            query: query.into(),
            limit,
        };
        client
            .search_skills(request(body, &creator(Uuid::new_v4())))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn activate(
        &self,
        who: &Identity,
        task: &str,
        limit: Option<u32>,
    ) -> Result<pb::ActivationList, tonic::Status> {
        let mut client = self.client.clone();
        let body = pb::ActivateRequest {
            task: task.into(),
            limit,
        };
        client
            .activate(request(body, who))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn create(
        &self,
        who: &Identity,
        input: pb::SkillInput,
    ) -> Result<pb::Skill, tonic::Status> {
        let mut client = self.client.clone();
        client
            .create_skill(request(input, who))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn sql_count(&self, query: &str) -> i64 {
        let client = testing::connect(&self.config.database_url).await;
        client.query_one(query, &[]).await.unwrap().get(0)
    }
}

fn names(skills: &[pb::Skill]) -> Vec<&str> {
    skills.iter().map(|skill| skill.name.as_str()).collect()
}

fn input(name: &str, tags: &[&str], related: &[&str], content: &str) -> pb::SkillInput {
    pb::SkillInput {
        name: name.into(),
        category: "testing".into(),
        description: format!("the {name} skill"),
        tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
        content: content.into(),
        related: related.iter().map(|name| (*name).to_owned()).collect(),
    }
}

#[tokio::test]
async fn the_seeded_catalogue_lists_with_filters_pages_and_sorts() {
    let skills = spawn_skills(true).await;
    let all = skills.list(list("", &[], "", None, 0, "")).await.unwrap();
    assert!(all.total_count >= 60);
    assert_eq!(all.filter_count, all.total_count);
    assert_eq!(all.skills.len(), 50, "the default limit");

    let captions = skills
        .list(list("captions", &[], "", Some(500), 0, "name"))
        .await
        .unwrap();
    assert!(
        captions
            .skills
            .iter()
            .all(|skill| skill.category == "captions")
    );
    assert_eq!(captions.filter_count as usize, captions.skills.len());
    let sorted = names(&captions.skills);
    let mut expected = sorted.clone();
    expected.sort();
    assert_eq!(sorted, expected);
    let descending = skills
        .list(list("captions", &[], "", Some(500), 0, "-name"))
        .await
        .unwrap();
    expected.reverse();
    assert_eq!(names(&descending.skills), expected);

    let any = skills
        .list(list("", &["hooks", "leaks"], "any", Some(500), 0, "name"))
        .await
        .unwrap();
    let all_of = skills
        .list(list(
            "",
            &["compliance", "leaks"],
            "all",
            Some(500),
            0,
            "name",
        ))
        .await
        .unwrap();
    assert!(names(&any.skills).contains(&"caption-hooks"));
    assert!(names(&any.skills).contains(&"leak-response"));
    assert_eq!(names(&all_of.skills), ["leak-response"]);
    assert_eq!(all_of.total_count, all.total_count);

    // Pagination edges: the last page, past the end, one per page.
    let total = all.total_count as u32;
    let last = skills
        .list(list("", &[], "", Some(10), total - 1, "name"))
        .await
        .unwrap();
    assert_eq!(last.skills.len(), 1);
    let past = skills
        .list(list("", &[], "", Some(10), total + 5, "name"))
        .await
        .unwrap();
    assert!(past.skills.is_empty());
    assert_eq!(past.filter_count, all.total_count);
    let one = skills
        .list(list("", &[], "", Some(1), 0, "name"))
        .await
        .unwrap();
    let two = skills
        .list(list("", &[], "", Some(1), 1, "name"))
        .await
        .unwrap();
    assert_ne!(one.skills[0].id, two.skills[0].id);

    for (body, bad) in [
        (list("", &[], "", Some(0), 0, ""), "limit"),
        (list("", &[], "", Some(501), 0, ""), "limit"),
        (list("", &[], "", None, 0, "content"), "sort"),
        (
            list("", &[], "", None, 0, "name; DROP TABLE skills.skills"),
            "sort",
        ),
        (list("", &[], "", None, 0, "-name,id"), "sort"),
        (list("", &["hooks"], "some", None, 0, ""), "tags_mode"),
        (list("Captions!", &[], "", None, 0, ""), "category"),
    ] {
        let status = skills.list(body).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(field(&status), bad);
    }
    // Still there after the injection attempt.
    assert_eq!(
        skills
            .list(list("", &[], "", None, 0, ""))
            .await
            .unwrap()
            .total_count,
        all.total_count
    );
}

#[tokio::test]
async fn skills_are_read_by_uuid_or_name_and_written_by_administrators_only() {
    let skills = spawn_skills(true).await;
    let mut client = skills.client.clone();
    let who = creator(Uuid::new_v4());
    let by_name = client
        .get_skill(request(
            pb::SkillRef {
                id: "caption-hooks".into(),
            },
            &who,
        ))
        .await
        .unwrap()
        .into_inner();
    let by_id = client
        .get_skill(request(
            pb::SkillRef {
                id: by_name.id.clone(),
            },
            &who,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_name, by_id);
    for missing in ["no-such-skill", &Uuid::new_v4().to_string()] {
        let status = client
            .get_skill(request(pb::SkillRef { id: missing.into() }, &who))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    }

    let new = input(
        "reply-speed",
        &["messaging"],
        &["dm-etiquette"],
        "Reply within an hour.",
    );
    let refused = skills.create(&who, new.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let update = pb::UpdateSkillRequest {
        id: "caption-hooks".into(),
        content: Some("x".into()),
        ..Default::default()
    };
    let status = client
        .update_skill(request(update, &who))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = client
        .delete_skill(request(
            pb::SkillRef {
                id: "caption-hooks".into(),
            },
            &who,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let admin = administrator(Uuid::new_v4());
    let created = skills.create(&admin, new.clone()).await.unwrap();
    assert_eq!(created.name, "reply-speed");
    assert_eq!(
        skills.create(&admin, new).await.unwrap_err().code(),
        Code::AlreadyExists
    );
    for (bad, name) in [
        (input("Bad Name", &[], &[], "c"), "name"),
        (input("ok-name", &["Not A Tag"], &[], "c"), "tags"),
        (input("ok-name", &[], &["no-such-skill"], "c"), "related"),
        (input("ok-name", &[], &[], "   "), "content"),
    ] {
        let status = skills.create(&admin, bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{name}");
        assert_eq!(field(&status), name);
    }
    skills.clock.advance(TimeDelta::minutes(5));
    let update = pb::UpdateSkillRequest {
        id: created.id.clone(),
        set_tags: true,
        tags: vec!["messaging".into(), "speed".into()],
        ..Default::default()
    };
    let updated = client
        .update_skill(request(update, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.tags, ["messaging", "speed"]);
    assert_eq!(updated.content, "Reply within an hour.");
    assert!(updated.date_updated > created.date_updated);
    let deleted = client
        .delete_skill(request(
            pb::SkillRef {
                id: "reply-speed".into(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.id, created.id);
}

#[tokio::test]
async fn search_ranks_by_field_weight_survives_typos_and_highlights() {
    let skills = spawn_skills(true).await;
    let exact = skills.search("caption hooks", Some(5)).await.unwrap();
    let top = &exact.hits[0];
    assert_eq!(top.skill.as_ref().unwrap().name, "caption-hooks");
    assert!(top.score > exact.hits[1].score);
    assert!(top.snippet.contains("<mark>"), "{}", top.snippet);

    let typo = skills.search("captoin hoocks", Some(5)).await.unwrap();
    assert_eq!(typo.hits[0].skill.as_ref().unwrap().name, "caption-hooks");
    assert!(
        typo.corrections
            .iter()
            .any(|c| c.from == "captoin" && c.to.starts_with("caption"))
    );

    let watermark = skills.search("watermrk", None).await.unwrap();
    assert_eq!(
        watermark.hits[0].skill.as_ref().unwrap().name,
        "watermarking"
    );

    for (query, limit) in [
        ("   ", None),
        ("!!! ???", None),
        ("hooks", Some(0)),
        ("hooks", Some(101)),
    ] {
        let status = skills.search(query, limit).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{query:?}");
    }
    let nothing = skills.search("zzzzqqq", None).await.unwrap();
    assert!(nothing.hits.is_empty());
}

#[tokio::test]
async fn related_skills_come_by_weight_with_their_edge_kinds() {
    let skills = spawn_skills(true).await;
    let mut client = skills.client.clone();
    let who = creator(Uuid::new_v4());
    let related = client
        .related_skills(request(
            pb::RelatedRequest {
                id: "caption-hooks".into(),
                limit: None,
            },
            &who,
        ))
        .await
        .unwrap()
        .into_inner()
        .related;
    let length = related
        .iter()
        .find(|r| r.skill.as_ref().unwrap().name == "caption-length")
        .expect("caption-hooks lists caption-length");
    assert!(length.kinds.contains(&"explicit".to_owned()));
    assert!(
        related
            .windows(2)
            .all(|pair| pair[0].weight >= pair[1].weight)
    );
    assert!(related.iter().all(|r| r.weight > 0.0 && r.weight <= 1.0));
    let status = client
        .related_skills(request(
            pb::RelatedRequest {
                id: "no-such".into(),
                limit: None,
            },
            &who,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn activation_on_a_small_graph_follows_matches_edges_and_history() {
    let skills = spawn_skills(false).await;
    let admin = administrator(Uuid::new_v4());
    // alpha matches the task by a tag; beta is only linked to alpha; gamma and delta match by
    // one word of their content each; unrelated matches nothing.
    skills
        .create(
            &admin,
            input("beta", &["other"], &[], "Nothing in common here."),
        )
        .await
        .unwrap();
    skills
        .create(
            &admin,
            input("alpha", &["invoice"], &["beta"], "Send the invoice."),
        )
        .await
        .unwrap();
    skills
        .create(
            &admin,
            input("gamma", &["misc"], &[], "An invoice template."),
        )
        .await
        .unwrap();
    skills
        .create(
            &admin,
            input("delta", &["misc2"], &[], "Another invoice template."),
        )
        .await
        .unwrap();
    skills
        .create(
            &admin,
            input("unrelated", &["cats"], &[], "Cats sleep a lot."),
        )
        .await
        .unwrap();

    let user = creator(Uuid::new_v4());
    let first = skills
        .activate(&user, "prepare the invoice", Some(10))
        .await
        .unwrap();
    let order: Vec<&str> = first
        .skills
        .iter()
        .map(|s| s.skill.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(order[0], "alpha", "{order:?}");
    let alpha = &first.skills[0];
    let why = alpha.why.as_ref().unwrap();
    assert_eq!(why.matched_tags, ["invoice"]);
    assert_eq!(why.matched_words, ["invoice"]);
    assert_eq!(why.path, ["alpha"]);
    assert_eq!(why.base_level, 0.0);
    assert!(!order.contains(&"unrelated"));
    if let Some(beta) = first
        .skills
        .iter()
        .find(|s| s.skill.as_ref().unwrap().name == "beta")
    {
        assert_eq!(beta.why.as_ref().unwrap().path, ["alpha", "beta"]);
    }
    // Recorded: one activation per returned skill, and a co_activation edge per pair.
    let returned = first.skills.len() as i64;
    assert_eq!(
        skills
            .sql_count("SELECT count(*) FROM skills.activations")
            .await,
        returned
    );
    assert_eq!(
        skills
            .sql_count("SELECT count(*) FROM skills.skill_edges WHERE kind = 'co_activation'")
            .await,
        returned * (returned - 1) / 2
    );

    // Another user with no history gets the same order as the first call (determinism), and
    // the first user's history now lifts what they used.
    let again = skills
        .activate(&user, "prepare the invoice", Some(10))
        .await
        .unwrap();
    assert!(again.skills[0].why.as_ref().unwrap().base_level > 0.0);
    assert!(again.skills[0].activation_score > alpha.activation_score);

    // Nothing fits: an answer, not an error.
    let none = skills
        .activate(&user, "bake sourdough bread", None)
        .await
        .unwrap();
    assert!(none.skills.is_empty());
    for (task, limit) in [
        ("  ", None),
        ("prepare the invoice", Some(0)),
        ("prepare", Some(51)),
    ] {
        assert_eq!(
            skills
                .activate(&user, task, limit)
                .await
                .unwrap_err()
                .code(),
            Code::InvalidArgument
        );
    }
}

#[tokio::test]
async fn the_same_history_gives_the_same_activation() {
    let skills = spawn_skills(true).await;
    let (one, two) = (creator(Uuid::new_v4()), creator(Uuid::new_v4()));
    let task = "schedule my posts at the best time for my audience";
    let top = |list: &pb::ActivationList| {
        let first = &list.skills[0];
        (
            first.skill.as_ref().unwrap().name.clone(),
            first.activation_score,
            first.why.clone(),
        )
    };
    // One skill per call: no co_activation edge grows, so both users see the same graph and
    // differ only by history, which is the same for both at every step.
    let a = top(&skills.activate(&one, task, Some(1)).await.unwrap());
    let b = top(&skills.activate(&two, task, Some(1)).await.unwrap());
    assert_eq!(a, b);
    skills.clock.advance(TimeDelta::hours(2));
    let a2 = top(&skills.activate(&one, task, Some(1)).await.unwrap());
    let b2 = top(&skills.activate(&two, task, Some(1)).await.unwrap());
    assert_eq!(a2, b2);
    assert!(a2.1 > a.1, "a use two hours ago lifts the skill");
    assert!(a2.2.unwrap().base_level > 0.0);
}

#[tokio::test]
async fn a_re_import_is_idempotent_and_reports_what_changed() {
    let skills = spawn_skills(true).await;
    let shipped = svc_skills::import_dir(&skills.config, &catalogue_dir())
        .await
        .unwrap();
    assert!(shipped.created.is_empty() && shipped.updated.is_empty());
    assert!(shipped.unchanged.len() >= 60);
    let edges = skills
        .sql_count("SELECT count(*) FROM skills.skill_edges")
        .await;

    let copy = std::env::temp_dir().join(format!("skills-{}", Uuid::new_v4()));
    std::fs::create_dir_all(copy.join("captions")).unwrap();
    let hooks = std::fs::read_to_string(catalogue_dir().join("captions/caption-hooks.md")).unwrap();
    std::fs::write(
        copy.join("captions/caption-hooks.md"),
        hooks.replace("headline", "newspaper headline"),
    )
    .unwrap();
    std::fs::write(
        copy.join("captions/alt-text.md"),
        "---\nname: alt-text\ncategory: captions\ndescription: Describe images for screen readers.\n\
         tags: [captions, accessibility]\nrelated: [emoji-style]\n---\nWrite what the image shows.\n",
    )
    .unwrap();
    let report = svc_skills::import_dir(&skills.config, &copy).await.unwrap();
    assert_eq!(report.updated, ["caption-hooks"]);
    assert_eq!(report.created, ["alt-text"]);
    let again = svc_skills::import_dir(&skills.config, &copy).await.unwrap();
    assert_eq!(again.unchanged.len(), 2);
    assert!(again.created.is_empty() && again.updated.is_empty());
    assert!(
        skills
            .sql_count("SELECT count(*) FROM skills.skill_edges")
            .await
            > edges
    );

    // A broken document refuses the whole import, naming the file.
    std::fs::write(copy.join("captions/broken.md"), "no front matter").unwrap();
    let err = svc_skills::import_dir(&skills.config, &copy)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("broken.md"), "{err}");
    std::fs::remove_dir_all(&copy).unwrap();
}

/// hit@1 and hit@5 of activation and of plain search on the labelled tasks (numbers in
/// README.md). Activation runs for a fresh user, so it uses the graph but no history.
#[tokio::test]
async fn activation_and_search_hit_at_k_on_the_labelled_tasks() {
    let skills = spawn_skills(true).await;
    let tasks = include_str!("labelled_tasks.tsv");
    let (mut n, mut act1, mut act5, mut search1, mut search5) = (0, 0, 0, 0, 0);
    for line in tasks
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
    {
        let (task, expected) = line.split_once('\t').unwrap();
        n += 1;
        let activated = skills
            .activate(&creator(Uuid::new_v4()), task, Some(5))
            .await
            .unwrap();
        let got: Vec<String> = activated
            .skills
            .iter()
            .map(|s| s.skill.as_ref().unwrap().name.clone())
            .collect();
        act1 += usize::from(got.first().is_some_and(|name| name == expected));
        act5 += usize::from(got.iter().any(|name| name == expected));
        if !got.iter().any(|name| name == expected) {
            println!("activation missed {expected}: {task} -> {got:?}");
        }
        let searched = skills.search(task, Some(5)).await.unwrap();
        let got: Vec<String> = searched
            .hits
            .iter()
            .map(|h| h.skill.as_ref().unwrap().name.clone())
            .collect();
        search1 += usize::from(got.first().is_some_and(|name| name == expected));
        search5 += usize::from(got.iter().any(|name| name == expected));
        if !got.iter().any(|name| name == expected) {
            println!("search missed {expected}: {task}");
        }
    }
    println!(
        "tasks {n}: activation hit@1 {act1} hit@5 {act5}; search hit@1 {search1} hit@5 {search5}"
    );
    assert!(n >= 20);
    assert!(
        act5 >= search5,
        "activation hit@5 {act5} < search {search5}"
    );
}
