//! What a user reads in a pod's status, through the real control plane and
//! agent: a crash-looping container's `lastState` (exit code, reason,
//! times) next to its CrashLoopBackOff and its previous run's log, and a container with an image but
//! no command, which the embedded runtime cannot pull, waiting with a
//! reason that says so instead of looping.

use rudder_tests::{control::Cluster, wait_for};
use serde_json::Value;

fn container_status(pod: &Value) -> Value {
    pod["status"]["containerStatuses"][0].clone()
}

#[test]
fn a_crash_looping_container_shows_how_its_last_run_ended() {
    rudder_tests::require_root();
    let c = Cluster::new("podstat");
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  nodeName: {}
  restartPolicy: Always
  containers:
  - name: main
    image: rudder/testapp
    command: ["sh", "-c", "echo crashing; exit 3"]
"#,
        c.nodes[0].name
    ));
    let pod = c.wait_pod("crasher", "restarted with a lastState", |pod| {
        let status = container_status(pod);
        status["restartCount"].as_i64().unwrap_or(0) >= 1
            && status["lastState"]["terminated"].is_object()
    });
    let status = container_status(&pod);
    let ended = &status["lastState"]["terminated"];
    assert_eq!(ended["exitCode"], 3, "{status:#}");
    assert_eq!(ended["reason"], "Error", "{status:#}");
    assert!(ended["startedAt"].is_string(), "{status:#}");
    assert!(ended["finishedAt"].is_string(), "{status:#}");

    let waiting = c.wait_pod("crasher", "in CrashLoopBackOff", |pod| {
        container_status(pod)["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    let message = container_status(&waiting)["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("back-off"), "{message}");

    // The run before the restart stays readable, and --tail cuts it.
    let previous = c.rudderctl(&["logs", "crasher", "--previous"]);
    let text = String::from_utf8_lossy(&previous.stdout).into_owned();
    assert!(previous.status.success(), "logs --previous: {previous:?}");
    assert_eq!(
        text, "crashing\n",
        "one run's output, not all runs together"
    );
    let tail = c.rudderctl(&["logs", "crasher", "--previous", "--tail", "0"]);
    assert!(tail.status.success() && tail.stdout.is_empty(), "{tail:?}");
    let since = c.rudderctl(&["logs", "crasher", "--since", "5m"]);
    let said = String::from_utf8_lossy(&since.stderr).into_owned();
    assert!(
        !since.status.success() && said.contains("no time per line"),
        "{said}"
    );
}

#[test]
fn a_container_with_only_an_image_waits_saying_the_runtime_pulls_no_images() {
    rudder_tests::require_root();
    let c = Cluster::new("podimg");
    c.apply(&format!(
        r"
apiVersion: v1
kind: Pod
metadata:
  name: nginx
spec:
  nodeName: {}
  containers:
  - name: web
    image: nginx
",
        c.nodes[0].name
    ));
    let pod = c.wait_pod("nginx", "waiting with ErrImageNeverPull", |pod| {
        container_status(pod)["state"]["waiting"]["reason"] == "ErrImageNeverPull"
    });
    assert_eq!(pod["status"]["phase"], "Pending");
    let status = container_status(&pod);
    let message = status["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("pulls no images"), "{message}");
    assert_eq!(status["restartCount"], 0, "never started, never restarted");

    let events = wait_for("an ErrImageNeverPull event", || {
        let out = c.rudderctl(&["get", "events", "-o", "json"]);
        let list: Value = serde_json::from_slice(&out.stdout).ok()?;
        let found: Vec<Value> = list["items"]
            .as_array()?
            .iter()
            .filter(|e| {
                e["involvedObject"]["name"] == "nginx" && e["reason"] == "ErrImageNeverPull"
            })
            .cloned()
            .collect();
        (!found.is_empty()).then_some(found)
    });
    assert_eq!(events[0]["type"], "Warning", "{events:#?}");
    let shown = c.rudderctl(&["get", "pod", "nginx"]);
    let table = String::from_utf8_lossy(&shown.stdout);
    assert!(
        table.contains("ErrImageNeverPull"),
        "get shows the reason: {table}"
    );
}
