//! What the console stands on, over HTTP without a browser: the session
//! cookie (sign-in, scope, sign-out, no use from a foreign page), the
//! browse routes (`/ticks/recent`, `/registrations`) and `GET /metrics`.
//! The pages themselves are driven in Chromium by `host/tests/binary/console.rs`.

use powerplug::http::run;
use powerplug_tests::{
    Client, Meter, Metrics, OPERATOR, eventually, grid_config, runtime, strategy_files,
};

/// A raw request: status, headers, body.
fn send(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut answer = agent
        .run(request.body(body.unwrap_or("").to_owned()).unwrap())
        .expect("the host answers");
    let headers = answer
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = answer.body_mut().read_to_string().unwrap_or_default();
    (answer.status().as_u16(), headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn a_console_session_is_a_cookie_scoped_like_its_token_and_ends_at_sign_out() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 50)))
        .unwrap();
    let url = &grid.url;
    let form = [("content-type", "application/x-www-form-urlencoded")];

    // Without a session: the sign-in form, and the API refuses.
    let (status, _, page) = send(url, "GET", "/console", &[], None);
    assert_eq!(status, 200);
    assert!(page.contains("name=\"token\"") && !page.contains("/console/strategies"));
    let (status, headers, _) = send(url, "GET", "/", &[], None);
    assert_eq!(
        (status, header(&headers, "location")),
        (303, Some("/console"))
    );

    // A wrong token: 401 and no cookie.
    let (status, headers, page) = send(url, "POST", "/console/sign-in", &form, Some("token=wrong"));
    assert_eq!(status, 401);
    assert!(header(&headers, "set-cookie").is_none());
    assert!(page.contains("missing or wrong"), "{page}");
    // No token field: 400, the form again.
    let (status, _, _) = send(url, "POST", "/console/sign-in", &form, Some("tok=x"));
    assert_eq!(status, 400);

    // The right one: a cookie, HttpOnly and SameSite=Strict, with an expiry.
    let (status, headers, _) = send(
        url,
        "POST",
        "/console/sign-in",
        &form,
        Some(&format!("token={OPERATOR}")),
    );
    assert_eq!(status, 303);
    let set = header(&headers, "set-cookie").expect("a session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Max-Age=43200", "Path=/"] {
        assert!(set.contains(part), "{part} in {set}");
    }
    assert!(!set.contains(OPERATOR), "the cookie is not the token");
    let cookie = set.split(';').next().unwrap().to_owned();
    let with = [("cookie", cookie.as_str())];

    // The cookie does what the token does.
    let (status, _, page) = send(url, "GET", "/console/strategies", &with, None);
    assert_eq!(status, 200);
    assert!(page.contains("id=\"upload\"") && page.contains("/console/experiments"));
    assert!(!page.contains(OPERATOR), "the token is not in the page");
    let (status, _, body) = send(url, "GET", "/console/session", &with, None);
    assert_eq!(status, 200, "{body}");
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (me["deploy"].as_bool(), me["admit"].as_bool()),
        (Some(true), Some(true))
    );
    let (status, _, body) = send(url, "GET", "/status", &with, None);
    assert_eq!(status, 200);
    assert!(
        body.contains("\"registrations\""),
        "the full status: {body}"
    );

    // A page of another site cannot use it to change anything.
    let foreign = [
        ("cookie", cookie.as_str()),
        ("origin", "http://evil.example"),
    ];
    let versions = Client::new(url).get("/strategies", Some(OPERATOR)).1;
    let active = versions["active"]["grid"].as_str().unwrap().to_owned();
    let (status, _, body) = send(
        url,
        "POST",
        &format!("/strategies/grid/activate/{active}"),
        &foreign,
        None,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("origin"), "{body}");

    // Signing out ends it on the host, not only in the browser.
    let (status, headers, _) = send(url, "POST", "/console/sign-out", &with, None);
    assert_eq!(status, 303);
    assert!(header(&headers, "set-cookie").is_some_and(|c| c.contains("Max-Age=0")));
    let (status, _, _) = send(url, "GET", "/strategies", &with, None);
    assert_eq!(status, 401);
    let (_, _, page) = send(url, "GET", "/console", &with, None);
    assert!(page.contains("name=\"token\""), "the sign-in form again");
    rt.block_on(grid.stop()).unwrap();
}

#[test]
fn ticks_registrations_and_metrics_show_what_the_grid_did_without_naming_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let rt = runtime();
    let grid = rt
        .block_on(run::grid(&grid_config(dir.path(), grid_wasm, 50)))
        .unwrap();
    let client = Client::new(&grid.url);
    let mut meters: Vec<Meter> = ["alpha-1", "alpha-2", "beta-1"]
        .iter()
        .zip(1u8..)
        .map(|(id, seed)| Meter::register(&grid.url, id, seed))
        .collect();
    for m in &mut meters {
        m.read_wh(1_000);
    }
    eventually("the grid bills the three kWh", || {
        client.get("/status", Some(OPERATOR)).1["totals"]["billed-wh"] == 3_000
    });

    // The last ticks, newest first, with what decided them.
    assert_eq!(client.get("/ticks/recent", None).0, 401);
    let (status, recent) = client.get("/ticks/recent?limit=500", Some(OPERATOR));
    assert_eq!(status, 200, "{recent}");
    let ticks = recent["ticks"].as_array().unwrap();
    let active = client.get("/strategies", Some(OPERATOR)).1["active"]["grid"].clone();
    assert!(ticks.len() >= 2);
    assert!(
        ticks
            .windows(2)
            .all(|w| w[0]["tick"].as_u64() > w[1]["tick"].as_u64())
    );
    assert!(
        ticks
            .iter()
            .all(|t| t["ended"] == "decided" && t["strategy"] == active)
    );
    let used: u64 = ticks.iter().map(|t| t["usage_wh"].as_u64().unwrap()).sum();
    assert_eq!(used, 3_000, "each Wh in the tick that took it");
    let requested: u64 = ticks.iter().map(|t| t["requested"].as_u64().unwrap()).sum();
    assert_eq!(requested, 15, "3 kWh at 5 tokens");
    let before = ticks[0]["tick"].as_u64().unwrap();
    let (_, older) = client.get(
        &format!("/ticks/recent?limit=1&before={before}"),
        Some(OPERATOR),
    );
    assert_eq!(older["ticks"][0]["tick"].as_u64(), Some(before - 1));
    for bad in ["limit=0", "limit=100000", "limit=x", "until=3"] {
        let (status, answer) = client.get(&format!("/ticks/recent?{bad}"), Some(OPERATOR));
        assert!(matches!(status, 400 | 422), "{bad}: {status}");
        assert!(answer["field"].is_string(), "{bad}: {answer}");
    }

    // Registrations a page at a time, by kind and id prefix.
    let page = |query: &str| {
        let (status, answer) = client.get(&format!("/registrations?{query}"), Some(OPERATOR));
        assert_eq!(status, 200, "{query}: {answer}");
        answer
    };
    let first = page("kind=consumer&q=alpha&limit=1");
    assert_eq!(first["registrations"][0]["id"], "alpha-1");
    assert_eq!(first["registrations"][0]["billed_wh"], 1_000);
    assert_eq!(first["registrations"][0]["requested"], 5);
    assert_eq!(first["next"], "alpha-1");
    let second = page("kind=consumer&q=alpha&limit=1&after=alpha-1");
    assert_eq!(second["registrations"][0]["id"], "alpha-2");
    let rest = page("kind=consumer&q=alpha&after=alpha-2");
    assert_eq!(rest["registrations"].as_array().unwrap().len(), 0);
    assert!(rest["next"].is_null());
    let all = page("kind=consumer");
    assert_eq!(all["registrations"].as_array().unwrap().len(), 3);
    assert!(
        page("kind=producer")["registrations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    for (bad, field) in [
        ("kind=wizard", "kind"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        (&format!("q={}", "a".repeat(65)), "q"),
    ] {
        let (status, answer) = client.get(&format!("/registrations?{bad}"), Some(OPERATOR));
        assert!(matches!(status, 400 | 422), "{bad}: {status}");
        assert_eq!(answer["field"], field, "{bad}: {answer}");
    }
    assert_eq!(client.get("/registrations", None).0, 401);

    // The same as a scraper sees it: counts, not names.
    let metrics = Metrics::of(&grid.url);
    let decided = metrics.labelled("powerplug_ticks_total", "outcome=\"decided\"");
    assert!(decided >= ticks.len() as u64, "{decided}");
    assert_eq!(
        metrics.get("powerplug_tick_duration_seconds_count"),
        metrics.sum_of("powerplug_ticks_total")
    );
    assert!(metrics.get("powerplug_channel_poll_duration_seconds_count") > 0);
    assert_eq!(metrics.get("powerplug_billed_wh_total"), 3_000);
    assert_eq!(metrics.get("powerplug_requested_tokens_total"), 15);
    assert_eq!(metrics.get("powerplug_payment_requests_total"), 3);
    let info = format!("sha256={active}");
    assert_eq!(metrics.labelled("powerplug_strategy_info", &info), 1);
    assert!(
        metrics.labelled(
            "powerplug_http_requests_total",
            "route=\"/registrations\",method=\"GET\",status=\"200\""
        ) >= 5
    );
    assert!(
        metrics.labelled(
            "powerplug_http_requests_total",
            "route=\"/registrations\",method=\"GET\",status=\"401\""
        ) >= 1
    );
    for id in ["alpha", "beta"] {
        assert!(!metrics.text().contains(id), "no entity in the metrics");
    }
    rt.block_on(grid.stop()).unwrap();
}

/// A new producer under the rule `approve` waits, the operator sees it and
/// lets it in (that channel key only) or refuses it.
#[test]
fn a_waiting_entity_is_let_in_by_the_operators_approval_for_its_own_key_only() {
    use powerplug::api;
    use powerplug::channel::ChannelWriter;
    use powerplug::domain::EntityKind;
    let dir = tempfile::tempdir().unwrap();
    let (grid_wasm, _) = strategy_files(dir.path());
    let mut config = grid_config(dir.path(), grid_wasm, 50);
    config.admission.producer = powerplug::admission::Rule::Approve;
    let rt = runtime();
    let grid = rt.block_on(run::grid(&config)).unwrap();
    let client = Client::new(&grid.url);
    let ask = |id: &str, seed: u8| {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let mut writer = ChannelWriter::new(key, true).unwrap();
        let body = api::Register::open(EntityKind::Producer, &mut writer, None).unwrap();
        client.put(
            &format!("/registrations/{id}"),
            None,
            &serde_json::to_value(body).unwrap(),
        )
    };
    let pending = || client.get("/admissions/pending", Some(OPERATOR)).1["pending"].clone();

    // Asking: refused for now, and listed with its key.
    let (status, answer) = ask("solar-farm", 1);
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["field"], "admission");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("waits for the operator")
    );
    let (status, _) = ask("wind-park", 2);
    assert_eq!(status, 403);
    let waiting = pending();
    assert_eq!(waiting.as_array().unwrap().len(), 2, "{waiting}");
    assert_eq!(waiting[0]["id"], "solar-farm");
    assert_eq!(waiting[0]["kind"], "producer");
    // Another key asking for the same id does not take the request over.
    ask("solar-farm", 9);
    assert_eq!(pending()[0]["author"], waiting[0]["author"]);

    // Only an operator with `admit` answers; a wrong id is 404.
    let (status, _) = client.post(
        "/admissions/pending/solar-farm/approve",
        None,
        &serde_json::json!({}),
    );
    assert_eq!(status, 401);
    let (status, answer) = client.post(
        "/admissions/pending/nobody/approve",
        Some(OPERATOR),
        &serde_json::json!({}),
    );
    assert_eq!((status, answer["field"].as_str()), (404, Some("id")));

    // Approved: the other key still cannot register it; its own key can.
    let (status, _) = client.post(
        "/admissions/pending/solar-farm/approve",
        Some(OPERATOR),
        &serde_json::json!({}),
    );
    assert_eq!(status, 200);
    assert_eq!(
        ask("solar-farm", 9).0,
        403,
        "approval is for the key that asked"
    );
    let (status, answer) = ask("solar-farm", 1);
    assert_eq!(status, 201, "{answer}");
    assert!(answer["credential"].is_string());
    // Refused: gone from the list, still not registered.
    let (status, _) = client.post(
        "/admissions/pending/wind-park/refuse",
        Some(OPERATOR),
        &serde_json::json!({}),
    );
    assert_eq!(status, 200);
    let ids: Vec<String> = pending()
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        ["solar-farm"],
        "only the other key's new request waits"
    );
    assert_eq!(
        client.get("/registrations?kind=producer", Some(OPERATOR)).1["registrations"][0]["id"],
        "solar-farm"
    );
    rt.block_on(grid.stop()).unwrap();
}
