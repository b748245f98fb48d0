//! Scheduled exports over HTTP: `GET /api/v1/schedules` (admin,
//! compliance: their organization's schedules, next fires, last run),
//! `POST /api/v1/schedules/reload` (admin) and
//! `POST /api/v1/schedules/{name}/run` (admin: a manual run now).

use serde_json::{json, Value};

use super::error::ApiError;
use super::routes::{json, Ctx, Reply};
use crate::schedules::{invalid_view, view};
use crate::users::{Requester, Role, User};

fn admin(ctx: &Ctx<'_>) -> Result<User, ApiError> {
    let u = ctx.user()?;
    if u.role != Role::Admin {
        return Err(ApiError::forbidden(
            "only admins may run or reload schedules",
        ));
    }
    Ok(u)
}

/// The caller's organization's schedules and (admins) problem files.
fn listing(ctx: &mut Ctx<'_>, user: &User) -> Result<Value, ApiError> {
    let sch = &ctx.state.schedules;
    let mut data = Vec::new();
    for d in sch.list() {
        if d.organization != user.organization_id {
            continue;
        }
        let status = sch.status(ctx.conn, &d, 3)?;
        data.push(view(&d, &status));
    }
    let (invalid, kept) = sch.problems();
    let problems: Vec<Value> = if user.role == Role::Admin {
        invalid
            .iter()
            .map(|i| (i, false))
            .chain(kept.iter().map(|i| (i, true)))
            // A file whose organization is unknown may be anyone's.
            .filter(|(i, _)| {
                i.organization
                    .as_deref()
                    .is_none_or(|o| o == user.organization_id)
            })
            .map(|(i, kept)| invalid_view(i, kept))
            .collect()
    } else {
        Vec::new()
    };
    Ok(json!({"data": data, "invalid": problems}))
}

/// `GET /api/v1/schedules` (exporters): the organization's schedules with their
/// next fires and last runs; admins also get the files that failed to load.
pub fn list(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.exporter()?;
    let body = listing(ctx, &user)?;
    Ok(json(200, &body))
}

/// `POST /api/v1/schedules/reload` (admin): rereads the schedule files, then
/// lists as `GET` does, with the number loaded.
pub fn reload(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = admin(ctx)?;
    let report = ctx.state.schedules.reload();
    let mut body = listing(ctx, &user)?;
    body["reloaded"] = json!(report.loaded.len());
    Ok(json(200, &body))
}

/// `POST /api/v1/schedules/{name}/run` (admin): fires the organization's
/// schedule now; `202` with the job.
pub fn run(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = admin(ctx)?;
    let name = ctx.id.clone().unwrap_or_default();
    let sch = ctx.state.schedules.clone();
    // Another organization's schedule does not exist for the caller.
    match sch.get(&name) {
        Some(d) if d.organization == user.organization_id => {}
        _ => return Err(ApiError::not_found()),
    }
    let job = sch.run_now(&name, &Requester::User(user))?;
    Ok(json(202, &ctx.state.svc.job_view(&job)))
}
