//! Canvas pagination (canvas-api-facts.md §3): bookmark collections for enrollment lists,
//! numbered ones for the array-backed lists (roles, sections), and the `Link` header.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::params::Params;

pub const DEFAULT_PER_PAGE: usize = 10;
pub const MAX_PER_PAGE: usize = 100;

/// Parameters Canvas drops from the query when it builds page links (§3).
const NON_LINK_PARAMS: [&str; 4] = ["page", "per_page", "access_token", "api_key"];

/// `per_page` clamped to 1..=100, default 10 (§3). A non-number falls back to the default.
pub fn per_page(params: &Params) -> usize {
    match params.get("per_page").map(str::trim) {
        None | Some("") => DEFAULT_PER_PAGE,
        Some(text) => match text.parse::<i64>() {
            Ok(n) => n.clamp(1, MAX_PER_PAGE as i64) as usize,
            Err(_) => DEFAULT_PER_PAGE,
        },
    }
}

/// Where the client's links point: scheme, the Host the client used, and the endpoint path.
#[derive(Debug, Clone)]
pub struct LinkBase {
    /// `http://host:port/api/v1/courses/1/enrollments` (no query).
    pub endpoint: String,
    /// Original query minus the paging and credential params, Rails `to_query` style.
    pub query: String,
}

impl LinkBase {
    pub fn new(endpoint: String, params: &Params) -> LinkBase {
        LinkBase {
            endpoint,
            query: link_query(params),
        }
    }

    fn url(&self, page: &str, per_page: usize) -> String {
        let mut url = self.endpoint.clone();
        url.push('?');
        if !self.query.is_empty() {
            url.push_str(&self.query);
            url.push('&');
        }
        url.push_str(&format!("page={page}&per_page={per_page}"));
        url
    }
}

/// Rails `Hash#to_query`: one `key=value` group per parameter (arrays as `key%5B%5D=v&...` in
/// their original order), groups sorted, joined with `&`.
fn link_query(params: &Params) -> String {
    let mut names: Vec<String> = Vec::new();
    for (key, _) in params.pairs() {
        let base = key.split('[').next().unwrap_or(key).to_string();
        if !NON_LINK_PARAMS.contains(&base.as_str()) && !names.contains(&base) {
            names.push(base);
        }
    }
    let mut groups: Vec<String> = names
        .iter()
        .map(|name| {
            // Keep every pair that belongs to this parameter (scalar, array or nested), last
            // scalar only, as Rails would have parsed it.
            let mut encoded = Vec::new();
            let mut scalar = None;
            for (key, value) in params.pairs() {
                if key == name {
                    scalar = Some(value);
                } else if key.starts_with(&format!("{name}[")) {
                    encoded.push(format!("{}={}", escape(key), escape(value)));
                }
            }
            if encoded.is_empty()
                && let Some(value) = scalar
            {
                encoded.push(format!("{}={}", escape(name), escape(value)));
            }
            encoded.join("&")
        })
        .filter(|g| !g.is_empty())
        .collect();
    groups.sort();
    groups.join("&")
}

/// Ruby's `CGI.escape`: unreserved `*-._0-9A-Za-z` kept, space as `+`, everything else `%XX`.
fn escape(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Canvas caps the Link header at about 6 KB (§3).
const LINK_HEADER_CAP: usize = 6 * 1024;

/// Which links survive the cap first: next, last, prev, current, first (§3).
const LINK_KEEP_PRIORITY: [&str; 5] = ["next", "last", "prev", "current", "first"];

/// One `Link` header value: `<URL>; rel="X"` entries joined by `,` with no space, in the order
/// current, next, prev, first, last (§3). Over the cap, the lowest-priority links are dropped.
fn link_header(entries: &[(&str, Option<String>)]) -> String {
    let mut kept: Vec<(&str, String)> = entries
        .iter()
        .filter_map(|(rel, url)| {
            url.as_ref()
                .map(|u| (*rel, format!("<{u}>; rel=\"{rel}\"")))
        })
        .collect();
    let total = |kept: &[(&str, String)]| kept.iter().map(|(_, e)| e.len() + 1).sum::<usize>();
    for rel in LINK_KEEP_PRIORITY.iter().rev() {
        if total(&kept) <= LINK_HEADER_CAP {
            break;
        }
        kept.retain(|(r, _)| r != rel);
    }
    kept.into_iter()
        .map(|(_, entry)| entry)
        .collect::<Vec<_>>()
        .join(",")
}

/// A page of items plus its `Link` header.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub link: String,
}

/// A bookmark page (§3): `page=first`, then `page=bookmark:<base64url JSON, no padding>` of the
/// last item's sort key; no `prev`; `last` (= current) only on the final page. An undecodable
/// bookmark is the first page; a numeric `page` above 1 is not found.
///
/// `items` must be sorted by `key`; the next page starts strictly after the bookmarked key, so
/// rows added or removed between requests shift pages the way keyset paging does.
pub fn bookmark_page<T: Clone, K>(
    items: &[T],
    key: impl Fn(&T) -> K,
    params: &Params,
    base: &LinkBase,
) -> Result<Page<T>, super::errors::ApiError>
where
    K: Ord + Serialize + DeserializeOwned,
{
    let per_page = per_page(params);
    let raw_page = params.get("page").unwrap_or("first").trim().to_string();
    if let Ok(n) = raw_page.parse::<i64>()
        && n > 1
    {
        return Err(super::errors::ApiError::NotFound);
    }
    let after: Option<K> = raw_page
        .strip_prefix("bookmark:")
        .and_then(|token| URL_SAFE_NO_PAD.decode(token).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let current_token = match after {
        Some(_) => raw_page.clone(),
        None => "first".to_string(),
    };
    let start = match &after {
        Some(bookmark) => items.partition_point(|item| key(item) <= *bookmark),
        None => 0,
    };
    let end = (start + per_page).min(items.len());
    let page_items = items[start..end].to_vec();
    let has_next = end < items.len();
    let next_token = if has_next {
        page_items
            .last()
            .and_then(|last| serde_json::to_vec(&key(last)).ok())
            .map(|json| format!("bookmark:{}", URL_SAFE_NO_PAD.encode(json)))
    } else {
        None
    };
    let current = base.url(&current_token, per_page);
    let link = link_header(&[
        ("current", Some(current.clone())),
        ("next", next_token.map(|t| base.url(&t, per_page))),
        ("first", Some(base.url("first", per_page))),
        ("last", (!has_next).then_some(current)),
    ]);
    Ok(Page {
        items: page_items,
        link,
    })
}

/// A numbered page with a known total: `page=1,2,...`, `prev` after page 1, `last` always;
/// a page past the end is `[]` (§3).
pub fn numbered_page<T: Clone>(items: &[T], params: &Params, base: &LinkBase) -> Page<T> {
    let per_page = per_page(params);
    // Rails `to_i`: junk and "first" become 0, which will_paginate treats as page 1.
    let page = params
        .get("page")
        .and_then(|p| p.trim().parse::<u64>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let total_pages = items.len().div_ceil(per_page).max(1) as u64;
    let start = ((page - 1) as usize)
        .saturating_mul(per_page)
        .min(items.len());
    let end = start.saturating_add(per_page).min(items.len());
    let url = |p: u64| base.url(&p.to_string(), per_page);
    let link = link_header(&[
        ("current", Some(url(page))),
        ("next", (page < total_pages).then(|| url(page + 1))),
        ("prev", (page > 1).then(|| url(page - 1))),
        ("first", Some(url(1))),
        ("last", Some(url(total_pages))),
    ]);
    Page {
        items: items[start..end].to_vec(),
        link,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(query: &str) -> LinkBase {
        LinkBase::new("http://h/api/v1/x".into(), &Params::from_urlencoded(query))
    }

    #[test]
    fn link_query_sorts_groups_and_drops_paging_and_credentials() {
        let b = base(
            "type[]=TeacherEnrollment&state[]=active&state[]=invited&access_token=t&page=2&per_page=5&api_key=k",
        );
        assert_eq!(
            b.query,
            "state%5B%5D=active&state%5B%5D=invited&type%5B%5D=TeacherEnrollment"
        );
    }

    #[test]
    fn bookmark_pages_walk_to_the_end() {
        let items: Vec<u64> = (1..=25).collect();
        let b = base("");
        let first = bookmark_page(&items, |i| *i, &Params::default(), &b).expect("first page");
        assert_eq!(first.items, (1..=10).collect::<Vec<_>>());
        assert!(
            first
                .link
                .starts_with("<http://h/api/v1/x?page=first&per_page=10>; rel=\"current\",<")
        );
        assert!(!first.link.contains("rel=\"last\""));
        let token = URL_SAFE_NO_PAD.encode(b"10");
        let second = bookmark_page(
            &items,
            |i| *i,
            &Params::from_urlencoded(&format!("page=bookmark:{token}")),
            &b,
        )
        .expect("second page");
        assert_eq!(second.items, (11..=20).collect::<Vec<_>>());
    }

    #[test]
    fn numbered_pages_have_prev_and_last() {
        let items: Vec<u64> = (1..=25).collect();
        let p = numbered_page(&items, &Params::from_urlencoded("page=2"), &base(""));
        assert_eq!(p.items, (11..=20).collect::<Vec<_>>());
        assert_eq!(
            p.link,
            "<http://h/api/v1/x?page=2&per_page=10>; rel=\"current\",<http://h/api/v1/x?page=3&per_page=10>; rel=\"next\",<http://h/api/v1/x?page=1&per_page=10>; rel=\"prev\",<http://h/api/v1/x?page=1&per_page=10>; rel=\"first\",<http://h/api/v1/x?page=3&per_page=10>; rel=\"last\""
        );
    }
}
