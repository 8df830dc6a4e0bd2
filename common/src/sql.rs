//! Queries through the connection's statement cache: each statement is parsed and planned once
//! per pooled connection, then only bound and executed. Every service's store module calls these
//! instead of the client's own methods, which would prepare the statement again on every call.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub async fn query(
    db: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, Error> {
    let statement = db.prepare_cached(sql).await?;
    db.query(&statement, params).await
}

pub async fn query_one(
    db: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Row, Error> {
    let statement = db.prepare_cached(sql).await?;
    db.query_one(&statement, params).await
}

pub async fn query_opt(
    db: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, Error> {
    let statement = db.prepare_cached(sql).await?;
    db.query_opt(&statement, params).await
}

pub async fn execute(db: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<u64, Error> {
    let statement = db.prepare_cached(sql).await?;
    db.execute(&statement, params).await
}

/// Whether JSON holds the NUL character anywhere (a key or a string), which PostgreSQL refuses
/// in `text` and `jsonb`.
pub fn holds_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(object) => object
            .iter()
            .any(|(key, value)| key.contains('\0') || holds_nul(value)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Settings, pool};

    #[tokio::test]
    async fn a_statement_is_prepared_once_per_connection() {
        let url = std::env::var("TEST_DATABASE_ADMIN_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let pool = pool(&url, 1, &Settings::default()).unwrap();
        let db = pool.get().await.unwrap();
        let statement = "SELECT $1::int + 1";
        for n in 0..3 {
            let row = query_one(&db, statement, &[&n]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), n + 1);
        }
        let prepared: i64 = query_one(
            &db,
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
            &[&statement],
        )
        .await
        .unwrap()
        .get(0);
        assert_eq!(prepared, 1);
    }
}
