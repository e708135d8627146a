//! Paged listings (`GET /v1/jobs`, `GET /v1/workflow-runs`): `limit`,
//! `cursor` (the last id of the page before: ids are UUIDv7, time-ordered),
//! `state` filters, and the `next_cursor` of the answer.

use super::ApiError;

/// Items per page unless `limit` says otherwise.
pub const DEFAULT_PAGE: u32 = 50;
/// Most items per page: bounds one response.
pub const MAX_PAGE: u32 = 500;

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub after: Option<uuid::Uuid>,
}

impl Page {
    pub fn of(limit: Option<u32>, cursor: Option<&str>) -> Result<Page, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::BadRequest(
                "invalid_query",
                format!("limit must be between 1 and {MAX_PAGE}"),
            ));
        }
        Page::at(limit, cursor)
    }

    /// A page of `limit` (checked by the caller) after `cursor`.
    pub fn at(limit: u32, cursor: Option<&str>) -> Result<Page, ApiError> {
        let after = cursor
            .map(|c| {
                uuid::Uuid::parse_str(c).map_err(|_| {
                    ApiError::BadRequest("invalid_query", "cursor is not one this API gave".into())
                })
            })
            .transpose()?;
        Ok(Page { limit, after })
    }

    /// What to ask the store for: one more than the page, which tells
    /// whether another page exists.
    pub fn fetch(&self) -> u32 {
        self.limit + 1
    }

    /// Cut `items` (fetched with [`Page::fetch`]) to the page; the cursor of
    /// the next page, when there is one.
    pub fn next_cursor<T>(
        &self,
        items: &mut Vec<T>,
        id: impl Fn(&T) -> uuid::Uuid,
    ) -> Option<String> {
        let more = items.len() > self.limit as usize;
        items.truncate(self.limit as usize);
        if more {
            items.last().map(|item| id(item).to_string())
        } else {
            None
        }
    }
}

/// A `state` query parameter: one of `all` (named by `name`), or 400
/// listing them.
pub fn state<T: Copy>(
    given: Option<&str>,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<Option<T>, ApiError> {
    let Some(given) = given else { return Ok(None) };
    all.iter()
        .copied()
        .find(|s| name(*s) == given)
        .map(Some)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|s| name(*s)).collect();
            ApiError::BadRequest(
                "invalid_query",
                format!("unknown state `{given}`; one of {}", names.join(", ")),
            )
        })
}
