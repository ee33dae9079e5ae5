//! Rollups: what the dashboards read instead of the raw rows. Every answered request is folded here, in memory,
//! into minute and hour buckets; every few seconds the fold is added to the stored buckets (additive upserts, so
//! several instances add up). The fold counts every request, also those whose raw row was not written (over the
//! row budget, or dropped by a full queue). Latency is kept as a fixed histogram per bucket, so a percentile over any window is exact
//! to one histogram bucket.

use std::collections::HashMap;

use super::{PageView, RequestRow};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
/// The widths rollups are kept at.
pub const RESOLUTIONS: [i64; 2] = [MINUTE_MS, HOUR_MS];

/// Upper bounds (ms) of the latency buckets; one more bucket holds everything above the last.
pub const LATENCY_BOUNDS_MS: [f64; 14] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// The bucket a response time falls in.
pub fn latency_bucket(ms: f64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|bound| ms <= *bound)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

/// The start of the bucket of width `resolution` holding `at_ms`.
pub fn bucket_start(at_ms: i64, resolution: i64) -> i64 {
    at_ms.div_euclid(resolution) * resolution
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestKey {
    pub resolution: i64,
    pub bucket_start: i64,
    pub method: &'static str,
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestTotals {
    pub requests: i64,
    pub total_ms: f64,
    pub max_ms: f64,
    pub request_bytes: i64,
    pub response_bytes: i64,
    pub latency: [i64; LATENCY_BUCKETS],
}

impl RequestTotals {
    pub fn add(&mut self, other: &RequestTotals) {
        self.requests += other.requests;
        self.total_ms += other.total_ms;
        self.max_ms = self.max_ms.max(other.max_ms);
        self.request_bytes += other.request_bytes;
        self.response_bytes += other.response_bytes;
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a += b;
        }
    }

    /// The `q` quantile (0..=1) as the upper bound of the bucket it falls in; the slowest response for the
    /// open-ended last bucket. None when there are no requests.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: i64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
        let mut seen = 0;
        for (i, count) in self.latency.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(LATENCY_BOUNDS_MS.get(i).copied().unwrap_or(self.max_ms));
            }
        }
        Some(self.max_ms)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserKey {
    pub resolution: i64,
    pub bucket_start: i64,
    pub user_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub resolution: i64,
    pub bucket_start: i64,
    pub path: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageTotals {
    pub views: i64,
    pub load_samples: i64,
    pub total_load_ms: f64,
}

/// Request rows, folded.
#[derive(Debug, Default)]
pub struct RequestFold {
    pub requests: HashMap<RequestKey, RequestTotals>,
    pub users: HashMap<UserKey, i64>,
}

impl RequestFold {
    pub fn of(rows: &[RequestRow]) -> RequestFold {
        let mut fold = RequestFold::default();
        for row in rows {
            fold.add(row);
        }
        fold
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Adds another fold (one whose write failed) into this one.
    pub fn merge(&mut self, other: RequestFold) {
        for (key, totals) in other.requests {
            self.requests.entry(key).or_default().add(&totals);
        }
        for (key, n) in other.users {
            *self.users.entry(key).or_default() += n;
        }
    }

    pub fn add(&mut self, row: &RequestRow) {
        let fold = self;
        {
            let bucket = latency_bucket(row.response_time_ms);
            for resolution in RESOLUTIONS {
                let start = bucket_start(row.created_at, resolution);
                let totals = fold
                    .requests
                    .entry(RequestKey {
                        resolution,
                        bucket_start: start,
                        method: row.method,
                        route: row.route,
                        status: row.status,
                    })
                    .or_default();
                totals.requests += 1;
                totals.total_ms += row.response_time_ms;
                totals.max_ms = totals.max_ms.max(row.response_time_ms);
                totals.request_bytes += row.request_size.unwrap_or(0);
                totals.response_bytes += row.response_size.unwrap_or(0);
                totals.latency[bucket] += 1;
                if let Some(user) = &row.user_id {
                    *fold
                        .users
                        .entry(UserKey {
                            resolution,
                            bucket_start: start,
                            user_id: user.clone(),
                        })
                        .or_default() += 1;
                }
            }
        }
    }
}

/// Page views, folded.
pub fn fold_page_views(views: &[PageView]) -> HashMap<PageKey, PageTotals> {
    let mut fold: HashMap<PageKey, PageTotals> = HashMap::new();
    for view in views {
        for resolution in RESOLUTIONS {
            let totals = fold
                .entry(PageKey {
                    resolution,
                    bucket_start: bucket_start(view.created_at, resolution),
                    path: view.path.clone(),
                })
                .or_default();
            totals.views += 1;
            if let Some(ms) = view.load_time_ms {
                totals.load_samples += 1;
                totals.total_load_ms += ms;
            }
        }
    }
    fold
}

/// The resolution a window is read at: minutes up to six hours, hours beyond (a month is 720 hour buckets).
pub fn resolution_for(window_ms: i64) -> i64 {
    if window_ms <= 6 * HOUR_MS {
        MINUTE_MS
    } else {
        HOUR_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_times_fall_in_the_bucket_their_upper_bound_names() {
        assert_eq!(latency_bucket(0.0), 0);
        assert_eq!(latency_bucket(0.5), 0);
        assert_eq!(latency_bucket(0.51), 1);
        assert_eq!(latency_bucket(10_000.0), 13);
        assert_eq!(latency_bucket(10_000.1), 14);
    }

    #[test]
    fn a_quantile_is_the_upper_bound_of_its_bucket() {
        let mut t = RequestTotals::default();
        // 90 fast (bucket 1 ms), 9 at 40 ms (bucket 50), 1 at 20 s (open bucket).
        t.latency[1] = 90;
        t.latency[6] = 9;
        t.latency[14] = 1;
        t.max_ms = 20_000.0;
        assert_eq!(t.quantile_ms(0.5), Some(1.0));
        assert_eq!(t.quantile_ms(0.9), Some(1.0));
        assert_eq!(t.quantile_ms(0.95), Some(50.0));
        assert_eq!(t.quantile_ms(0.99), Some(50.0));
        assert_eq!(t.quantile_ms(1.0), Some(20_000.0));
        assert_eq!(RequestTotals::default().quantile_ms(0.5), None);
    }

    #[test]
    fn buckets_start_on_their_width() {
        assert_eq!(bucket_start(3_600_000 + 61_234, MINUTE_MS), 3_660_000);
        assert_eq!(bucket_start(3_600_000 + 61_234, HOUR_MS), 3_600_000);
        assert_eq!(bucket_start(-1, MINUTE_MS), -60_000);
    }
}
