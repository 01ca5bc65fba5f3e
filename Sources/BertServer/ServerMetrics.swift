import Foundation
import Prometheus

/// The server's Prometheus metrics, with text-embeddings-inference's names (`te_*`).
final class ServerMetrics: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    let queueSize: Gauge
    let batchSize: ValueHistogram
    let inputsRun: Gauge
    private let lock = NSLock()
    private var counters: [String: Prometheus.Counter] = [:]
    private var durations: [String: DurationHistogram] = [:]

    init() {
        queueSize = registry.makeGauge(descriptor: metricName("te_queue_size", "Inputs waiting for a batch"))
        inputsRun = registry.makeGauge(descriptor: metricName("te_batch_inputs_run", "Inputs computed so far"))
        batchSize = registry.makeValueHistogram(
            descriptor: metricName("te_batch_next_size", "Inputs per batch"),
            buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256])
    }

    private func counter(_ name: String, _ labels: [(String, String)]) -> Prometheus.Counter {
        let key = name + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        lock.lock()
        defer { lock.unlock() }
        if let c = counters[key] { return c }
        let c = registry.makeCounter(
            descriptor: metricName(name, name.replacingOccurrences(of: "_", with: " ")), labels: labels)
        counters[key] = c
        return c
    }

    /// A request served: te_request_count, te_request_success, te_request_input_count and the
    /// duration histograms (total, queue, inference).
    func count(route: String, inputs: Int, timing: Timing) {
        let labels = [("method", route)]
        counter("te_request_count", labels).increment()
        counter("te_request_success", labels).increment()
        counter("te_request_input_count", labels).increment(by: Int64(inputs))
        counter("te_request_tokens", labels).increment(by: Int64(timing.tokens))
        for (name, seconds) in [
            ("te_request_duration", timing.total), ("te_request_queue_duration", timing.queue),
            ("te_request_inference_duration", timing.inference),
        ] {
            duration(name).recordSeconds(seconds)
        }
    }

    /// A request whose client closed the connection before its answer (its waiting inputs dropped).
    func clientGone() { counter("te_request_client_gone", []).increment() }

    /// A request that ended in an error status.
    func failures(status: Int) {
        counter("te_request_failure", [("status", String(status))]).increment()
    }

    private func duration(_ name: String) -> DurationHistogram {
        lock.lock()
        defer { lock.unlock() }
        if let h = durations[name] { return h }
        let h = registry.makeDurationHistogram(
            descriptor: metricName(name, name.replacingOccurrences(of: "_", with: " ") + " (seconds)"),
            buckets: [
                .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
            ])
        durations[name] = h
        return h
    }
}

extension DurationHistogram {
    func recordSeconds(_ s: Double) { record(.nanoseconds(Int64(s * 1e9))) }
}

/// A metric's full name as one component (TEI's names are fixed: te_request_count, ...).
private func metricName(_ name: String, _ help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
}
