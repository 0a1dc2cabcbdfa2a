//! Latency percentiles as the load generators print them.

/// `"latency_us":{"p50":..,"p90":..,"p99":..,"max":..}` of `samples`
/// (microseconds, nearest rank); sorts them. `None` when there are none.
pub fn summary_json(samples: &mut [u32]) -> Option<String> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let pick = |q: f64| {
        let rank = ((samples.len() as f64) * q).ceil() as usize;
        samples[rank.clamp(1, samples.len()) - 1]
    };
    Some(format!(
        "\"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"max\":{}}}",
        pick(0.50),
        pick(0.90),
        pick(0.99),
        pick(1.0),
    ))
}

#[cfg(test)]
mod tests {
    use super::summary_json;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut samples: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(
            summary_json(&mut samples).as_deref(),
            Some("\"latency_us\":{\"p50\":50,\"p90\":90,\"p99\":99,\"max\":100}")
        );
        assert_eq!(summary_json(&mut []), None);
    }
}
