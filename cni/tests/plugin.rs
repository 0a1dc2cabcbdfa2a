//! rudder-cni invoked as a runtime invokes it, on a node host with pod
//! sandboxes (needs root).

mod support;

use std::{collections::HashSet, path::Path};

use serde_json::{Value, json};
use support::{GATEWAY, REFERENCE_PLUGINS, TestNode, netns_path, result_ip, with_prev_result};

#[test]
fn add_check_del_round_trip() {
    let mut node = TestNode::new("cnirt");
    let pod = node.pod("pod");
    let config = node.config("1.1.0");
    let result = node.add("ctr-1", &pod, &config);

    assert_eq!(result["cniVersion"], "1.1.0");
    let interfaces = result["interfaces"].as_array().expect("interfaces");
    assert_eq!(interfaces.len(), 3, "{result}");
    assert_eq!(interfaces[0]["name"], "cni0");
    let host_veth = interfaces[1]["name"]
        .as_str()
        .expect("host veth")
        .to_owned();
    assert!(interfaces[1].get("sandbox").is_none(), "{result}");
    assert_eq!(interfaces[2]["name"], "eth0");
    assert_eq!(interfaces[2]["sandbox"], netns_path(&pod));
    assert_eq!(result["ips"][0]["interface"], 2);
    assert_eq!(result["ips"][0]["gateway"], GATEWAY);
    assert_eq!(
        result["routes"][0],
        json!({"dst": "0.0.0.0/0", "gw": GATEWAY})
    );
    let ip = result_ip(&result);
    assert!(ip.starts_with("10.244.1.") && ip != GATEWAY, "{ip}");

    // The sandbox: address, default route, loopback up, MAC as reported.
    let addr = pod.ip(&["-o", "-4", "addr", "show", "eth0"]).expect("addr");
    assert!(addr.contains(&format!("{ip}/24")), "{addr}");
    let link = pod.ip(&["-o", "link", "show", "eth0"]).expect("link");
    assert!(
        link.contains(interfaces[2]["mac"].as_str().expect("mac")),
        "{link}"
    );
    let routes = pod.ip(&["route", "show", "default"]).expect("routes");
    assert!(
        routes.contains(&format!("via {GATEWAY} dev eth0")),
        "{routes}"
    );
    let lo = pod.ip(&["-o", "link", "show", "lo"]).expect("lo");
    assert!(lo.contains(",UP"), "{lo}");
    // The node: the bridge holds the gateway, the host veth is its port.
    let bridge = node
        .node
        .ip(&["-o", "-4", "addr", "show", "cni0"])
        .expect("bridge");
    assert!(bridge.contains(&format!("{GATEWAY}/24")), "{bridge}");
    let port = node
        .node
        .ip(&["-o", "link", "show", &host_veth])
        .expect("port");
    assert!(
        port.contains("master cni0") && port.contains("state UP"),
        "{port}"
    );
    // The allocation names its owner.
    let record = std::fs::read_to_string(node.allocation_dir().join(&ip)).expect("allocation");
    assert_eq!(record.lines().collect::<Vec<_>>(), ["ctr-1", "eth0"]);

    let checked = with_prev_result(&config, &result);
    let check = node.cni("CHECK", "ctr-1", Some(&pod), &checked);
    assert!(check.success, "{check:?}");

    // CHECK notices what is not as ADD left it.
    pod.ip(&["route", "del", "default"]).expect("remove route");
    let (code, msg) = node.cni("CHECK", "ctr-1", Some(&pod), &checked).error();
    assert!(
        code >= 100 && msg.contains("route 0.0.0.0/0"),
        "{code} {msg}"
    );

    let del = node.cni("DEL", "ctr-1", Some(&pod), &checked);
    assert!(del.success, "{del:?}");
    assert!(
        pod.ip(&["link", "show", "eth0"]).is_err(),
        "eth0 left in the pod"
    );
    assert!(node.node_veths().is_empty(), "{:?}", node.node_veths());
    assert!(node.allocated().is_empty(), "{:?}", node.allocated());
    let (_, msg) = node.cni("CHECK", "ctr-1", Some(&pod), &checked).error();
    assert!(msg.contains("no address"), "{msg}");
}

#[test]
fn del_is_idempotent() {
    let mut node = TestNode::new("cnidel");
    let config = node.config("1.1.0");
    let pod = node.pod("pod");
    node.add("ctr-1", &pod, &config);
    for _ in 0..2 {
        let del = node.cni("DEL", "ctr-1", Some(&pod), &config);
        assert!(del.success, "{del:?}");
    }
    // Never added, and no CNI_NETNS at all.
    assert!(node.cni("DEL", "ctr-never", None, &config).success);

    // The sandbox vanishes before DEL: the address is still released.
    let gone = node.pod("gone");
    node.add("ctr-2", &gone, &config);
    assert_eq!(node.allocated().len(), 1);
    node.node.run(&["true"]).expect("node alive");
    netns_delete(gone.name());
    let del = node.cni("DEL", "ctr-2", Some(&gone), &config);
    assert!(del.success, "{del:?}");
    assert!(node.allocated().is_empty(), "{:?}", node.allocated());
    assert!(node.node_veths().is_empty(), "{:?}", node.node_veths());
    // Before any ADD on a node, DEL finds no state at all and succeeds.
    let fresh = TestNode::new("cnidel0");
    assert!(
        fresh
            .cni("DEL", "ctr-3", None, &fresh.config("0.4.0"))
            .success
    );
}

fn netns_delete(name: &str) {
    let status = std::process::Command::new("ip")
        .args(["netns", "delete", name])
        .status()
        .expect("ip netns delete");
    assert!(status.success());
}

#[test]
fn concurrent_adds_get_distinct_addresses() {
    const PODS: usize = 20;
    let mut node = TestNode::new("cnipar");
    let config = node.config("1.1.0");
    let pods: Vec<_> = (0..PODS).map(|i| node.pod(&format!("p{i}"))).collect();
    let results: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                let (node, config) = (&node, &config);
                scope.spawn(move || node.add(&format!("ctr-{i}"), pod, config))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("ADD thread"))
            .collect()
    });
    let ips: HashSet<String> = results.iter().map(result_ip).collect();
    assert_eq!(ips.len(), PODS, "{ips:?}");
    assert_eq!(node.allocated().len(), PODS);
    assert_eq!(node.node_veths().len(), PODS);
    for (i, pod) in pods.iter().enumerate() {
        assert!(
            node.cni("DEL", &format!("ctr-{i}"), Some(pod), &config)
                .success
        );
    }
    assert!(node.allocated().is_empty());
}

/// What was wrong, the environment, stdin, the code expected and a word
/// the message must contain.
type ErrorCase<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u64, &'a str);

#[test]
fn bad_input_gets_the_spec_error_code() {
    let mut node = TestNode::new("cnierr");
    let pod = node.pod("pod");
    let plugin = Path::new(support::RUDDER_CNI);
    let config = node.config("1.0.0");
    let good_env = |command: &str| {
        vec![
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", "ctr-1".to_owned()),
            ("CNI_NETNS", netns_path(&pod)),
            ("CNI_IFNAME", "eth0".to_owned()),
            ("CNI_PATH", REFERENCE_PLUGINS.to_owned()),
        ]
    };
    let without = |var: &str| {
        let mut env = good_env("ADD");
        env.retain(|(k, _)| *k != var);
        env
    };
    let with = |var: &'static str, value: &str| {
        let mut env = good_env("ADD");
        env.retain(|(k, _)| *k != var);
        env.push((var, value.to_owned()));
        env
    };
    let config_bytes = config.to_string().into_bytes();
    // A regular file: neither a namespace nor a place for directories.
    let plain_file = node.dir.join("plain-file");
    std::fs::write(&plain_file, "").expect("plain file");
    let plain_file = plain_file.to_string_lossy().into_owned();
    let under_plain_file = format!("{plain_file}/ipam");
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut config = config.clone();
        edit(&mut config);
        config.to_string().into_bytes()
    };
    let cases: Vec<ErrorCase<'_>> = vec![
        (
            "bad JSON",
            good_env("ADD"),
            b"{\"cniVersion\": ".to_vec(),
            6,
            "decode",
        ),
        ("empty stdin", good_env("ADD"), Vec::new(), 6, "empty"),
        (
            "unknown cniVersion",
            good_env("ADD"),
            edited(&|c| c["cniVersion"] = json!("9.9.9")),
            1,
            "9.9.9",
        ),
        (
            "missing CNI_COMMAND",
            without("CNI_COMMAND"),
            config_bytes.clone(),
            4,
            "CNI_COMMAND",
        ),
        (
            "unknown CNI_COMMAND",
            with("CNI_COMMAND", "FROB"),
            config_bytes.clone(),
            4,
            "FROB",
        ),
        (
            "missing CNI_NETNS",
            without("CNI_NETNS"),
            config_bytes.clone(),
            4,
            "CNI_NETNS",
        ),
        (
            "missing CNI_CONTAINERID",
            without("CNI_CONTAINERID"),
            config_bytes.clone(),
            4,
            "CNI_CONTAINERID",
        ),
        (
            "missing CNI_IFNAME",
            without("CNI_IFNAME"),
            config_bytes.clone(),
            4,
            "CNI_IFNAME",
        ),
        (
            "malformed CNI_ARGS",
            with("CNI_ARGS", "K8S_POD_NAME"),
            config_bytes.clone(),
            4,
            "CNI_ARGS",
        ),
        (
            "netns is not a namespace",
            with("CNI_NETNS", &plain_file),
            config_bytes.clone(),
            4,
            "not a network namespace",
        ),
        (
            "netns does not exist",
            with("CNI_NETNS", "/run/netns/rdr-none"),
            config_bytes.clone(),
            3,
            "does not exist",
        ),
        (
            "missing subnet",
            good_env("ADD"),
            edited(&|c| c["ipam"] = json!({})),
            7,
            "ipam.subnet",
        ),
        (
            "IPv6 subnet",
            good_env("ADD"),
            edited(&|c| c["ipam"]["subnet"] = json!("fd00::/64")),
            2,
            "IPv4",
        ),
        (
            "bad bandwidth",
            good_env("ADD"),
            edited(&|c| c["runtimeConfig"] = json!({"bandwidth": {"ingressRate": 1000}})),
            7,
            "ingressBurst",
        ),
        (
            "GC in 1.0.0",
            good_env("GC"),
            edited(&|c| c["cni.dev/valid-attachments"] = json!([])),
            1,
            "GC",
        ),
        (
            "GC without valid attachments",
            good_env("GC"),
            edited(&|c| c["cniVersion"] = json!("1.1.0")),
            7,
            "valid-attachments",
        ),
        (
            "STATUS with an unwritable dataDir",
            good_env("STATUS"),
            edited(&|c| {
                c["cniVersion"] = json!("1.1.0");
                c["ipam"]["dataDir"] = json!(under_plain_file);
            }),
            50,
            "plain-file",
        ),
    ];
    for (what, env, stdin, want_code, needle) in cases {
        let outcome = node.invoke_raw(plugin, &env, &stdin);
        let (code, msg) = outcome.error();
        assert_eq!(code, want_code, "{what}: {msg}");
        assert!(
            msg.contains(needle),
            "{what}: {msg:?} should mention {needle:?}"
        );
    }
    // Nothing of it left state behind.
    assert!(node.node_veths().is_empty());
    assert!(node.allocated().is_empty());
    // ADD twice for one attachment is refused, and the first stays intact.
    let config = node.config("1.1.0");
    node.add("ctr-1", &pod, &config);
    let (code, msg) = node.cni("ADD", "ctr-1", Some(&pod), &config).error();
    assert_eq!(code, 101, "{msg}");
    assert_eq!(node.allocated().len(), 1);
    assert_eq!(node.node_veths().len(), 1);
}

#[test]
fn a_failed_add_leaves_nothing_behind() {
    let mut node = TestNode::new("cnifull");
    let mut config = node.config("1.1.0");
    config["ipam"]["rangeStart"] = json!("10.244.1.10");
    config["ipam"]["rangeEnd"] = json!("10.244.1.11");
    let pods: Vec<_> = (0..3).map(|i| node.pod(&format!("p{i}"))).collect();
    node.add("ctr-0", &pods[0], &config);
    node.add("ctr-1", &pods[1], &config);
    // The range is exhausted.
    let (code, msg) = node.cni("ADD", "ctr-2", Some(&pods[2]), &config).error();
    assert_eq!(code, 100, "{msg}");
    assert!(msg.contains("10.244.1.10-10.244.1.11"), "{msg}");
    assert_eq!(node.allocated(), ["10.244.1.10", "10.244.1.11"]);
    assert_eq!(node.node_veths().len(), 2);
    assert!(pods[2].ip(&["link", "show", "eth0"]).is_err());

    // Failing after the veth exists (a route the kernel refuses): the veth
    // goes and the address is released.
    let mut config = node.config("1.1.0");
    config["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0", "gw": "192.168.77.1"}]);
    let (code, msg) = node.cni("ADD", "ctr-2", Some(&pods[2]), &config).error();
    assert_eq!(code, 102, "{msg}");
    assert!(msg.contains("192.168.77.1"), "{msg}");
    assert_eq!(node.allocated().len(), 2);
    assert_eq!(node.node_veths().len(), 2);
    assert!(pods[2].ip(&["link", "show", "eth0"]).is_err());

    // The sandbox already has an eth0: nothing is created, nothing allocated.
    pods[2]
        .ip(&["link", "add", "eth0", "type", "bridge"])
        .expect("an eth0 of its own");
    let (code, msg) = node.cni("ADD", "ctr-2", Some(&pods[2]), &config).error();
    assert_eq!(code, 103, "{msg}");
    assert_eq!(node.allocated().len(), 2);
    assert_eq!(node.node_veths().len(), 2);
}

#[test]
fn result_format_follows_the_config_version() {
    let mut node = TestNode::new("cnifmt");
    for (i, version) in ["0.4.0", "1.0.0", "1.1.0"].into_iter().enumerate() {
        let pod = node.pod(&format!("p{i}"));
        let mut config = node.config(version);
        config["mtu"] = json!(1400);
        let result = node.add(&format!("ctr-{i}"), &pod, &config);
        assert_eq!(result["cniVersion"], version);
        let ip = &result["ips"][0];
        match version {
            "0.4.0" => assert_eq!(ip["version"], "4", "{result}"),
            _ => assert!(ip.get("version").is_none(), "{result}"),
        }
        match version {
            "1.1.0" => assert_eq!(result["interfaces"][2]["mtu"], 1400, "{result}"),
            _ => assert!(result["interfaces"][2].get("mtu").is_none(), "{result}"),
        }
        let mtu = pod.ip(&["-o", "link", "show", "eth0"]).expect("link");
        assert!(mtu.contains("mtu 1400"), "{mtu}");
        // CHECK and DEL read a prevResult in the same version's format.
        let prev = with_prev_result(&config, &result);
        assert!(
            node.cni("CHECK", &format!("ctr-{i}"), Some(&pod), &prev)
                .success
        );
        assert!(
            node.cni("DEL", &format!("ctr-{i}"), Some(&pod), &prev)
                .success
        );

        let version_env = [("CNI_COMMAND", "VERSION".to_owned())];
        let stdin = json!({"cniVersion": version}).to_string();
        let answer = node
            .invoke_raw(
                Path::new(support::RUDDER_CNI),
                &version_env,
                stdin.as_bytes(),
            )
            .result();
        assert_eq!(answer["cniVersion"], version);
        assert_eq!(
            answer["supportedVersions"],
            json!(["0.4.0", "1.0.0", "1.1.0"])
        );
    }
}

#[test]
fn a_prev_result_is_extended_not_replaced() {
    let mut node = TestNode::new("cniprev");
    let pod = node.pod("pod");
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "other0", "mac": "02:00:00:00:00:01"}],
        "ips": [{"address": "192.168.5.5/24", "interface": 0}],
        "routes": [{"dst": "192.168.0.0/16"}],
        "dns": {"nameservers": ["10.96.0.10"]}
    });
    let config = with_prev_result(&node.config("1.0.0"), &prev);
    let result = node.add("ctr-1", &pod, &config);
    assert_eq!(result["interfaces"][0]["name"], "other0");
    assert_eq!(result["interfaces"][3]["name"], "eth0");
    assert_eq!(result["ips"][0]["address"], "192.168.5.5/24");
    assert_eq!(result["ips"][1]["interface"], 3, "{result}");
    assert_eq!(result["routes"].as_array().map(Vec::len), Some(2));
    assert_eq!(result["dns"]["nameservers"][0], "10.96.0.10");
}

#[test]
fn gc_releases_attachments_not_listed() {
    let mut node = TestNode::new("cnigc");
    let mut config = node.config("1.1.0");
    config["runtimeConfig"] =
        json!({"bandwidth": {"ingressRate": 8_000_000, "ingressBurst": 80_000}});
    let pods: Vec<_> = (0..3).map(|i| node.pod(&format!("p{i}"))).collect();
    let results: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| node.add(&format!("ctr-{i}"), pod, &config))
        .collect();
    let bandwidth_dir = node.dir.join("bandwidth");
    assert_eq!(
        std::fs::read_dir(&bandwidth_dir).expect("records").count(),
        3
    );

    let mut gc = node.config("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "ctr-1", "ifname": "eth0"}]);
    let env = [
        ("CNI_COMMAND", "GC".to_owned()),
        ("CNI_PATH", REFERENCE_PLUGINS.to_owned()),
    ];
    let outcome = node.invoke_raw(
        Path::new(support::RUDDER_CNI),
        &env,
        gc.to_string().as_bytes(),
    );
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(node.allocated(), [result_ip(&results[1])]);
    let records: Vec<_> = std::fs::read_dir(&bandwidth_dir)
        .expect("records")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(records, ["ctr-1-eth0.json"]);
    // The stale attachments' veths went too; the kept one is untouched.
    assert_eq!(
        node.node_veths(),
        [results[1]["interfaces"][1]["name"].as_str().expect("veth")]
    );
    let prev = with_prev_result(&node.config("1.1.0"), &results[1]);
    assert!(node.cni("CHECK", "ctr-1", Some(&pods[1]), &prev).success);
}

#[test]
fn status_reports_whether_add_can_work() {
    let node = TestNode::new("cnistat");
    let env = [
        ("CNI_COMMAND", "STATUS".to_owned()),
        ("CNI_PATH", REFERENCE_PLUGINS.to_owned()),
    ];
    let config = node.config("1.1.0");
    let outcome = node.invoke_raw(
        Path::new(support::RUDDER_CNI),
        &env,
        config.to_string().as_bytes(),
    );
    assert!(outcome.success, "{outcome:?}");
    assert!(outcome.stdout.trim().is_empty());
}

#[test]
fn bandwidth_capability_is_recorded_until_del() {
    let mut node = TestNode::new("cnibw");
    let pod = node.pod("pod");
    let mut config = node.config("1.1.0");
    config["runtimeConfig"] = json!({"bandwidth": {
        "ingressRate": 10_000_000, "ingressBurst": 100_000,
        "egressRate": 5_000_000, "egressBurst": 50_000
    }});
    let result = node.add("ctr-1", &pod, &config);
    let path = node.dir.join("bandwidth").join("ctr-1-eth0.json");
    let record: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("record")).expect("JSON");
    assert_eq!(record["hostVeth"], result["interfaces"][1]["name"]);
    assert_eq!(record["containerID"], "ctr-1");
    assert_eq!(record["ingressRate"], 10_000_000);
    assert_eq!(record["egressBurst"], 50_000);
    assert!(node.cni("DEL", "ctr-1", Some(&pod), &config).success);
    assert!(!path.exists());
}

#[test]
fn pods_on_the_bridge_reach_each_other() {
    let mut node = TestNode::new("cniping");
    let config = node.config("1.1.0");
    let a = node.pod("a");
    let b = node.pod("b");
    let ip_a = result_ip(&node.add("ctr-a", &a, &config));
    let ip_b = result_ip(&node.add("ctr-b", &b, &config));
    a.run(&["ping", "-c", "1", "-W", "5", &ip_b])
        .expect("a pings b");
    b.run(&["ping", "-c", "1", "-W", "5", &ip_a])
        .expect("b pings a");
    a.run(&["ping", "-c", "1", "-W", "5", GATEWAY])
        .expect("a pings the node");
}

/// The reference plugins after rudder-cni, invoked as libcni runs a
/// conflist: every plugin gets the list's name and cniVersion, its own
/// entry, the previous plugin's result as prevResult; CHECK in order with
/// the final result, DEL in reverse order.
#[test]
fn reference_plugins_chain_after_rudder_cni() {
    let mut node = TestNode::new("cnichain");
    let pod = node.pod("pod");
    let tuning = Path::new(REFERENCE_PLUGINS).join("tuning");
    assert!(
        tuning.is_file(),
        "{} is missing: install containernetworking-plugins (cargo xtask setup does)",
        tuning.display()
    );
    let ours = node.config("1.0.0");
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": "pods",
        "plugins": [
            ours,
            {"type": "tuning", "mtu": 1280, "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}},
            {"type": "bandwidth", "capabilities": {"bandwidth": true}},
        ]
    });
    let runtime_config = json!({"bandwidth": {
        "ingressRate": 8_000_000, "ingressBurst": 800_000,
        "egressRate": 8_000_000, "egressBurst": 800_000
    }});
    let entries = conflist["plugins"].as_array().expect("plugins");
    let plugin_config = |entry: &Value, prev: Option<&Value>| {
        let mut config = entry.clone();
        config["name"] = conflist["name"].clone();
        config["cniVersion"] = conflist["cniVersion"].clone();
        if entry.get("capabilities").is_some() || entry["type"] == "rudder-cni" {
            config["runtimeConfig"] = runtime_config.clone();
        }
        if let Some(prev) = prev {
            config["prevResult"] = prev.clone();
        }
        config
    };
    let binary = |entry: &Value| match entry["type"].as_str() {
        Some("rudder-cni") => Path::new(support::RUDDER_CNI).to_path_buf(),
        Some(other) => Path::new(REFERENCE_PLUGINS).join(other),
        None => panic!("entry without type: {entry}"),
    };
    let sandbox = netns_path(&pod);
    let mut prev: Option<Value> = None;
    for entry in entries {
        let outcome = node.invoke(
            &binary(entry),
            "ADD",
            "ctr-1",
            Some(&sandbox),
            &plugin_config(entry, prev.as_ref()),
        );
        prev = Some(outcome.result());
    }
    let result = prev.expect("final result");
    // rudder-cni's part survived the chain; tuning applied its settings.
    assert_eq!(result["interfaces"][2]["name"], "eth0", "{result}");
    assert!(result_ip(&result).starts_with("10.244.1."), "{result}");
    let link = pod.ip(&["-o", "link", "show", "eth0"]).expect("link");
    assert!(link.contains("mtu 1280"), "{link}");
    let sysctl = pod
        .run(&["cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"])
        .expect("sysctl");
    assert_eq!(sysctl.trim(), "1");
    // The bandwidth plugin found rudder-cni's host veth in the result.
    let host_veth = result["interfaces"][1]["name"].as_str().expect("host veth");
    let qdisc = node
        .node
        .run(&["tc", "qdisc", "show", "dev", host_veth])
        .expect("tc");
    assert!(qdisc.contains("tbf"), "{qdisc}");

    for entry in entries {
        let outcome = node.invoke(
            &binary(entry),
            "CHECK",
            "ctr-1",
            Some(&sandbox),
            &plugin_config(entry, Some(&result)),
        );
        assert!(outcome.success, "CHECK {}: {outcome:?}", entry["type"]);
    }
    for entry in entries.iter().rev() {
        let outcome = node.invoke(
            &binary(entry),
            "DEL",
            "ctr-1",
            Some(&sandbox),
            &plugin_config(entry, Some(&result)),
        );
        assert!(outcome.success, "DEL {}: {outcome:?}", entry["type"]);
    }
    assert!(node.allocated().is_empty());
    assert!(node.node_veths().is_empty());
    assert!(pod.ip(&["link", "show", "eth0"]).is_err());
}

/// The same network attached twice to one pod (eth0, then eth1), as the
/// reference bridge plugin allows: the second ADD keeps the first
/// interface's default route instead of failing on it (code 102), both
/// pass CHECK, and DEL of either leaves the other working.
#[test]
fn a_second_attachment_of_the_network_in_one_pod_succeeds() {
    let mut node = TestNode::new("cnitwo");
    let pod = node.pod("pod");
    let config = node.config("1.0.0");
    let invoke = |command: &str, ifname: &str, config: &Value| {
        let env = [
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", "ctr-1".to_owned()),
            ("CNI_NETNS", netns_path(&pod)),
            ("CNI_IFNAME", ifname.to_owned()),
            ("CNI_PATH", REFERENCE_PLUGINS.to_owned()),
        ];
        node.invoke_raw(
            Path::new(support::RUDDER_CNI),
            &env,
            config.to_string().as_bytes(),
        )
    };
    let first = invoke("ADD", "eth0", &config).result();
    let second = invoke("ADD", "eth1", &config).result();
    assert_eq!(second["cniVersion"], "1.0.0");
    assert_eq!(second["interfaces"][2]["name"], "eth1", "{second}");
    let (ip0, ip1) = (result_ip(&first), result_ip(&second));
    assert_ne!(ip0, ip1);
    let addr = pod.ip(&["-o", "-4", "addr", "show", "eth1"]).expect("addr");
    assert!(addr.contains(&format!("{ip1}/24")), "{addr}");
    let routes = pod.ip(&["route", "show", "default"]).expect("routes");
    assert!(routes.contains("dev eth0"), "{routes}");
    for (ifname, result) in [("eth0", &first), ("eth1", &second)] {
        let check = invoke("CHECK", ifname, &with_prev_result(&config, result));
        assert!(check.success, "CHECK {ifname}: {check:?}");
    }
    let del = invoke("DEL", "eth1", &with_prev_result(&config, &second));
    assert!(del.success, "{del:?}");
    assert!(pod.ip(&["link", "show", "eth1"]).is_err(), "eth1 left");
    let check = invoke("CHECK", "eth0", &with_prev_result(&config, &first));
    assert!(check.success, "CHECK eth0 after DEL eth1: {check:?}");
    assert_eq!(node.allocated(), [ip0]);
}

/// ADD and CHECK without CNI_PATH fail with code 4, as the spec asks,
/// and leave nothing behind.
#[test]
fn add_without_cni_path_is_refused() {
    let mut node = TestNode::new("cnipath");
    let pod = node.pod("pod");
    let config = node.config("1.0.0");
    for command in ["ADD", "CHECK"] {
        let env = [
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", "ctr-1".to_owned()),
            ("CNI_NETNS", netns_path(&pod)),
            ("CNI_IFNAME", "eth0".to_owned()),
        ];
        let (code, msg) = node
            .invoke_raw(
                Path::new(support::RUDDER_CNI),
                &env,
                config.to_string().as_bytes(),
            )
            .error();
        assert_eq!(code, 4, "{command}: {msg}");
        assert!(msg.contains("CNI_PATH"), "{command}: {msg}");
    }
    assert!(node.allocated().is_empty(), "{:?}", node.allocated());
    assert!(node.node_veths().is_empty(), "{:?}", node.node_veths());
    assert!(pod.ip(&["link", "show", "eth0"]).is_err(), "eth0 made");
}
