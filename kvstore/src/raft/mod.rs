//! Three (or more) replicas agreeing through Raft (openraft).
