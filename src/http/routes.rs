//! The registration helper every resource `router()` uses. Each route is added to the axum router and recorded
//! as (method, path) in the same call, so the list of registered routes cannot drift from the router: a test
//! compares it with [`super::system::ROUTES`], the table that `/api/docs` and the 401/403 sweep tests read.
//! Invariant: no resource adds a route to an axum `Router` directly; everything goes through [`Routes`].

use axum::{
    Router,
    handler::Handler,
    http::Method,
    routing::{self, MethodRouter},
};

use crate::state::AppState;

/// An axum router together with the (method, path) of every route it serves.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    registered: Vec<(Method, &'static str)>,
}

impl Routes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one route. Axum merges several methods registered on one path.
    fn add(mut self, method: Method, path: &'static str, route: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, route);
        self.registered.push((method, path));
        self
    }

    pub fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::GET, path, routing::get(h))
    }

    pub fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::POST, path, routing::post(h))
    }

    pub fn put<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::PUT, path, routing::put(h))
    }

    pub fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::DELETE, path, routing::delete(h))
    }

    /// A route that needs more than a handler (a service behind its own layer): `router` must serve exactly
    /// `method path`, which is recorded like any other route.
    pub fn service(mut self, method: Method, path: &'static str, router: Router<AppState>) -> Self {
        self.router = self.router.merge(router);
        self.registered.push((method, path));
        self
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.registered.extend(other.registered);
        self
    }

    /// Every (method, path) registered, in registration order.
    pub fn registered(&self) -> &[(Method, &'static str)] {
        &self.registered
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}
