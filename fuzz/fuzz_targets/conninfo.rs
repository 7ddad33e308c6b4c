//! PostgreSQL connection strings (key=value and URLs, with percent escapes
//! and TLS options) as users type them: no input may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lifeboat_postgres::tls::split_tls_options(text);
        let _ = lifeboat_postgres::sql::has_password(text);
        let _ = lifeboat_postgres::pgpass::find(text, "localhost", 5432, "app", "backup");
    }
});
