//! The deployment files: docker-compose.yml is complete and uses deploy/nginx.conf, the same
//! file scripts/cluster runs (CI also validates the compose file with `docker-compose config`
//! when it can install it).

use serde_yaml_ng::Value;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    serde_yaml_ng::from_str(&text).expect("docker-compose.yml is valid YAML")
}

/// Every service has an image, a command (or the image's), environment and a healthcheck;
/// services are configured the way the contract says; consumers read the feed through nginx.
#[test]
fn the_compose_file_describes_the_whole_topology() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    for name in ["postgres", "order", "invoicing", "shipping", "nginx"] {
        let svc = &services[name];
        assert!(svc["image"].is_string(), "{name} has an image");
        assert!(
            svc["healthcheck"]["test"].is_sequence(),
            "{name} has a healthcheck"
        );
    }
    for (name, port) in [("order", 8081), ("invoicing", 8082), ("shipping", 8083)] {
        let svc = &services[name];
        assert_eq!(
            svc["command"][0].as_str(),
            Some(name),
            "one image, the service by command"
        );
        let env = &svc["environment"];
        assert_eq!(
            env["BIND"].as_str(),
            Some(format!("0.0.0.0:{port}").as_str())
        );
        let db = env["DATABASE_URL"].as_str().unwrap();
        assert!(
            db.starts_with("postgres://") && db.ends_with(&format!("feedline_{name}")),
            "{db}"
        );
        assert_eq!(
            svc["depends_on"]["postgres"]["condition"].as_str(),
            Some("service_healthy")
        );
    }
    for name in ["invoicing", "shipping"] {
        let env = &services[name]["environment"];
        assert_eq!(
            env["FEED_URL"].as_str(),
            Some("http://nginx:8080/order/feed")
        );
        assert_eq!(
            services[name]["depends_on"]["nginx"]["condition"].as_str(),
            Some("service_healthy")
        );
    }
    let nginx = &services["nginx"];
    assert_eq!(nginx["ports"][0].as_str(), Some("8080:8080"));
    let volumes: Vec<&str> = nginx["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        volumes.contains(&"./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"),
        "{volumes:?}"
    );
    assert!(
        volumes.contains(&"./deploy/compose:/etc/nginx/site:ro"),
        "{volumes:?}"
    );
    let init = services["postgres"]["volumes"][0].as_str().unwrap();
    assert!(init.starts_with("./deploy/postgres-init.sql:"), "{init}");
}

/// The files compose mounts exist, and the init script creates the databases compose names.
#[test]
fn the_files_compose_mounts_exist_and_agree() {
    for file in [
        "deploy/nginx.conf",
        "deploy/compose/upstreams.conf",
        "deploy/compose/listen.conf",
        "Dockerfile",
    ] {
        assert!(root().join(file).is_file(), "{file}");
    }
    let init = std::fs::read_to_string(root().join("deploy/postgres-init.sql")).unwrap();
    for name in ["order", "invoicing", "shipping"] {
        assert!(
            init.contains(&format!("CREATE DATABASE feedline_{name};")),
            "{name}"
        );
    }
    let nginx = std::fs::read_to_string(root().join("deploy/nginx.conf")).unwrap();
    for needle in [
        "include site/upstreams.conf;",
        "include site/listen.conf;",
        "proxy_cache_revalidate on;",
        "proxy_cache_lock on;",
        "location /invoicing/",
        "location /shipping/",
        "location = / ",
    ] {
        assert!(nginx.contains(needle), "nginx.conf lacks {needle:?}");
    }
    let upstreams = std::fs::read_to_string(root().join("deploy/compose/upstreams.conf")).unwrap();
    for upstream in ["order:8081", "invoicing:8082", "shipping:8083"] {
        assert!(upstreams.contains(upstream), "{upstream}");
    }
}
