//! The time the main server runs on, so the console can say when it is a simulated
//! one (a test or demonstration installation, `--clock-file`).

use actix_web::HttpResponse;
use shared_proto::admin_api::ServerClock;

use super::State;
use crate::auth::Viewer;
use crate::error::ApiError;

#[utoipa::path(
    get, path = "/admin/v1/clock", tag = "operators",
    responses((status = 200, description = "The server's time now, and whether it runs on a simulated clock.", body = ServerClock))
)]
pub(super) async fn show_clock(_: Viewer, state: State) -> Result<HttpResponse, ApiError> {
    let clock = &state.clock;
    Ok(HttpResponse::Ok().json(ServerClock {
        now: clock.now(),
        simulated: clock.is_simulated(),
        offset_seconds: clock.offset().num_seconds(),
    }))
}
