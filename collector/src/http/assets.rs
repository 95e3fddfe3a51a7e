//! The page and its assets, embedded so the binary is self-contained.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const UPLOT_JS: &str = include_str!("../../web/vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../web/vendor/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("../../web/vendor/uPlot.LICENSE");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Assets change only with the binary; the page revalidates.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn app_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn app_css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

pub async fn uplot_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", UPLOT_JS)
}

pub async fn uplot_css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", UPLOT_CSS)
}

pub async fn uplot_license() -> impl IntoResponse {
    asset("text/plain; charset=utf-8", UPLOT_LICENSE)
}
