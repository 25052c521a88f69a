//! Paginated listings: `rel="next"` is followed to the end, only on the configured origin, and a listing that
//! would come back silently partial (a loop, or a full last page Canvas does not mark as last) is an error.

use reqwest::Method;
use reqwest::header::LINK;
use serde::de::DeserializeOwned;
use url::Url;

use super::{CanvasClient, decode};
use crate::canvas::error::CanvasError;
use crate::canvas::link;

impl CanvasClient {
    /// Follows `rel="next"` until it is absent, refusing anything that would make the listing silently partial.
    pub async fn list_all<T: DeserializeOwned>(&self, first: Url) -> Result<Vec<T>, CanvasError> {
        let mut out = Vec::new();
        let mut url = first;
        let mut seen = std::collections::HashSet::new();
        let mut page = 0usize;
        loop {
            page += 1;
            let answer = self.request(Method::GET, url.clone(), None).await?;
            let items: Vec<T> = decode(&answer.body, "array")?;
            let full_page = items.len() >= self.opts.per_page as usize;
            out.extend(items);
            let links = answer
                .headers
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(link::parse)
                .collect::<Vec<_>>();
            match link::find(&links, "next") {
                Some(next) => {
                    let next = self.same_origin(next)?;
                    if !seen.insert(next.to_string()) {
                        return Err(CanvasError::Pagination(format!(
                            "page {page} links back to a page already read; stopping instead of looping"
                        )));
                    }
                    url = next;
                }
                None => {
                    // On the final page Canvas sends `last` = `current` (facts §3). A full page without `next`
                    // whose `last` is missing or points elsewhere means the listing was cut short.
                    if full_page {
                        let last = link::find(&links, "last");
                        let current = link::find(&links, "current");
                        let consistent = match (last, current) {
                            (Some(l), Some(c)) => l == c,
                            (Some(_), None) => true,
                            (None, _) => false,
                        };
                        if !consistent {
                            return Err(CanvasError::Pagination(format!(
                                "page {page} is full ({} rows) but has no rel=\"next\" link and its rel=\"last\" \
                                 does not mark it as the final page",
                                self.opts.per_page
                            )));
                        }
                    }
                    return Ok(out);
                }
            }
        }
    }

    fn same_origin(&self, link: &str) -> Result<Url, CanvasError> {
        let url = Url::parse(link)
            .or_else(|_| self.opts.base_url.join(link))
            .map_err(|_| {
                CanvasError::Pagination(format!("unparsable rel=\"next\" link `{link}`"))
            })?;
        let base = &self.opts.base_url;
        if url.scheme() != base.scheme()
            || url.host_str().map(str::to_ascii_lowercase)
                != base.host_str().map(str::to_ascii_lowercase)
            || url.port_or_known_default() != base.port_or_known_default()
        {
            return Err(CanvasError::Pagination(format!(
                "rel=\"next\" points to another origin ({}://{}); it is not followed, the token would be sent there",
                url.scheme(),
                url.host_str().unwrap_or("?")
            )));
        }
        Ok(url)
    }
}
