//! Telling the API what the pods do: their statuses and Events, written
//! by a task of their own, and removing the objects of pods that finished
//! terminating.

use rudder_api::{core::ObjectReference, events::EventType};
use rudder_client::EventRecorder;

/// What the pod rounds hand the reporter.
pub(super) enum Report {
    /// Boxed: a pod status is several times the size of the others.
    Status(Box<crate::pods::StatusReport>),
    Event(crate::pods::PodEvent),
    /// The pod is gone from the node: remove its object.
    Removed(crate::pods::RemovedPod),
}

/// Pod status writes the reporter keeps in flight at once.
const STATUS_WRITES_IN_FLIGHT: usize = 16;

/// Writes pod statuses (latest per pod wins; a conflict is retried with
/// the fresh object) and pod events to the API from a task of its own,
/// so a slow API server never holds up the pods.
pub(super) fn status_reporter(
    api: rudder_client::ClientConfig,
    node: String,
) -> tokio::sync::mpsc::UnboundedSender<Report> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Report>();
    tokio::spawn(async move {
        let mut client = None;
        let mut events = None;
        while let Some(first) = rx.recv().await {
            let mut latest = std::collections::BTreeMap::new();
            let mut happened = Vec::new();
            let mut removed = Vec::new();
            for report in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                match report {
                    Report::Status(status) => {
                        latest.insert(status.uid.clone(), *status);
                    }
                    Report::Event(event) => happened.push(event),
                    Report::Removed(pod) => {
                        // Its final status goes first, so the object's
                        // last state is what the pod ended as.
                        removed.push(pod);
                    }
                }
            }
            if client.is_none() {
                client = rudder_client::Client::connect_with(&api).await.ok();
            }
            let Some(c) = client.as_ref() else { continue };
            // Runs as a task of its own, between and during the
            // status writes below.
            let (recorder, _) = events
                .get_or_insert_with(|| EventRecorder::start(c.clone(), "rudder-agent", &node));
            for event in happened {
                record_pod_event(recorder, event);
            }
            // Several writes in flight: the store commits what queued up
            // together, so a burst of new pods is not reported one fsync
            // at a time.
            let mut writes = tokio::task::JoinSet::new();
            for report in latest.into_values() {
                while writes.len() >= STATUS_WRITES_IN_FLIGHT {
                    writes.join_next().await;
                }
                let c = c.clone();
                writes.spawn(async move {
                    if let Err(err) = write_status(&c, &report).await {
                        tracing::warn!(pod = %report.name, %err, "reporting pod status");
                    }
                });
            }
            while writes.join_next().await.is_some() {}
            for pod in removed {
                if let Err(err) = remove_pod(c, &pod).await {
                    tracing::warn!(pod = %pod.name, %err, "removing terminated pod");
                }
            }
        }
    });
    tx
}

fn record_pod_event(recorder: &EventRecorder, event: crate::pods::PodEvent) {
    let involved = ObjectReference {
        kind: Some("Pod".to_owned()),
        namespace: Some(event.namespace),
        name: Some(event.name),
        uid: Some(event.uid),
        api_version: Some("v1".to_owned()),
        field_path: event
            .container
            .map(|container| format!("spec.containers{{{container}}}")),
        ..ObjectReference::default()
    };
    let type_ = if event.warning {
        EventType::Warning
    } else {
        EventType::Normal
    };
    recorder.record_about(involved, type_, event.reason, event.message);
}

/// Removes the object of a pod this node finished terminating: grace 0,
/// and only the incarnation that ended (a pod of the same name created
/// since is another pod). Gone already is fine.
async fn remove_pod(
    client: &rudder_client::Client,
    pod: &crate::pods::RemovedPod,
) -> Result<(), rudder_client::ClientError> {
    use rudder_client::ClientError;
    let options = rudder_api::meta::DeleteOptions {
        grace_period_seconds: Some(0),
        uid: pod.uid.clone(),
        ..rudder_api::meta::DeleteOptions::default()
    };
    match client
        .delete_with(rudder_api::Kind::Pod, &pod.namespace, &pod.name, &options)
        .await
    {
        Ok(_) | Err(ClientError::NotFound(_) | ClientError::Conflict(_)) => Ok(()),
        Err(err) => Err(err),
    }
}

async fn write_status(
    client: &rudder_client::Client,
    report: &crate::pods::StatusReport,
) -> Result<(), rudder_client::ClientError> {
    use rudder_client::ClientError;
    for _ in 0..5 {
        let mut pod: rudder_api::core::Pod = match client.get(&report.namespace, &report.name).await
        {
            Ok(pod) => pod,
            Err(ClientError::NotFound(_)) => return Ok(()),
            Err(err) => return Err(err),
        };
        if pod.metadata.uid != report.uid {
            return Ok(());
        }
        pod.status = Some(report.status.clone());
        match client.update_status(&pod).await {
            Ok(_) => return Ok(()),
            Err(ClientError::Conflict(_)) => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
