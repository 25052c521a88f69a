//! The Canvas REST API as rostersync uses it: an HTTP client that paces, retries and paginates
//! (`client`), the JSON it reads (`model`), `Link` headers (`link`), id forms in paths (`path`) and the adaptive
//! in-flight limit (`pacer`).

pub mod client;
pub mod error;
pub mod jobs;
pub mod link;
pub mod model;
pub mod pacer;
pub mod path;

pub use client::{CanvasClient, ClientOptions, EnrollTarget, RequestStats};
pub use error::CanvasError;
