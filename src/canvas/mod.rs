//! The Canvas REST API as rostersync uses it: an HTTP client that paces, retries and paginates
//! (`client`), the JSON it reads (`model`), `Link` headers (`link`), id forms in paths (`path`) and the adaptive
//! in-flight limit (`pacer`); `status` says what an HTTP status means (retry or not, which error).

pub mod client;
pub mod error;
pub mod jobs;
pub mod link;
pub mod model;
pub mod pacer;
pub mod path;
mod status;

pub use client::{CanvasClient, ClientOptions, EnrollTarget, RequestStats};
pub use error::CanvasError;
