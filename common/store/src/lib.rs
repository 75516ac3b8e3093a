//! Subscriber and registration store on sqlx: SQLite by default, PostgreSQL for shared deployments
#![forbid(unsafe_code)]
