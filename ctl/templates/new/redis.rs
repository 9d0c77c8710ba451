/// State shared by every instance and host, on Redis (`[redis] url` in the
/// configuration; `cargo run -- --set redis.url=/run/redis/redis-server.sock`):
/// this browser's visits, counted in its session whichever instance answers.
async fn visits(session: corepool::redis::Session, ctx: Ctx) -> Result<Json<serde_json::Value>, ApiError> {
    let n = session.get::<u64>("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", n).await?;
    Ok(Json(serde_json::json!({ "visits": n, "instance": ctx.instance })))
}

/// The routes with a session (cookie `NAME_session`; the data in Redis).
fn shared() -> Router {
    Router::new().route("/visits", get(visits)).layer(corepool::redis::sessions())
}
