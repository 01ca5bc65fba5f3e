import Bert
import BertCompute
import BertTokenizer
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle

/// An HTTP inference server for one model folder, with text-embeddings-inference's routes, limits
/// and errors, dynamic batching across requests, Prometheus metrics, an access log and a graceful
/// stop on SIGTERM or SIGINT (requests in flight finish; then it returns).
public final class InferenceServer: @unchecked Sendable {
    let options: ServerOptions
    let model: ServedModel
    let metrics: ServerMetrics
    let logger: Logger
    private let inFlight = InFlight()

    /// A server for the model in `folder`, served as `name`; the model is loaded here.
    public init(folder: URL, name: String, options: ServerOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger
        model = try ServedModel(
            name: name, folder: folder, maxBatchTokens: options.maxBatchTokens,
            maxQueued: max(options.maxConcurrentRequests * options.maxClientBatchSize, 1))
        metrics = ServerMetrics()
    }

    /// Serves until SIGTERM or SIGINT; `listening` is called with the bound port.
    public func run(listening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: AccessLog(logger: logger, metrics: metrics))
        router.add(middleware: Guard(server: self))
        addRoutes(to: router)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "bert"),
            onServerRunning: { channel in listening(channel.localAddress?.port ?? 0) },
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        model.scheduler.shutDown()
    }

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.get("/health") { _, _ in jsonResponse([String: Any]()) }
        router.get("/info") { [self] _, _ in jsonResponse(info()) }
        router.get("/metrics") { [self] _, _ in
            metrics.queueSize.set(Double(model.scheduler.queued))
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.registry.emitToString())))
        }
        router.get("/models") { [self] _, _ in
            jsonResponse(["object": "list", "data": [["id": model.name, "object": "model", "owned_by": "swift-bert"]]])
        }
        router.post("/tokenize") { [self] request, _ in try await tokenize(request) }
        router.post("/decode") { [self] request, _ in try await decode(request) }
        switch model.head {
        case .embedder:
            router.post("/embed") { [self] request, _ in try await embed(request) }
            router.post("/v1/embeddings") { [self] request, _ in try await openAIEmbeddings(request) }
        case .classifier(let tuner):
            router.post("/predict") { [self] request, _ in try await predict(request) }
            if tuner.model.numLabels == 1 {
                router.post("/rerank") { [self] request, _ in try await rerank(request) }
            }
        }
    }

    func info() -> [String: Any] {
        var type: [String: Any]
        switch model.head {
        case .embedder(let e):
            type = [
                "embedding": ["pooling": e.pooling.map(\.rawValue).joined(separator: "+"), "dimension": e.dimension]
            ]
        case .classifier(let t):
            type = [
                "classifier": [
                    "id2label": Dictionary(
                        uniqueKeysWithValues: t.model.labels.enumerated().map { ("\($0.offset)", $0.element) })
                ]
            ]
        }
        return [
            "model_id": model.name, "model_type": type, "max_concurrent_requests": options.maxConcurrentRequests,
            "max_input_length": model.maxInputLength, "max_batch_tokens": options.maxBatchTokens,
            "max_client_batch_size": options.maxClientBatchSize, "auto_truncate": options.autoTruncate,
            "payload_limit": options.payloadLimit, "compute_threads": Compute.threads, "version": serverVersion,
        ]
    }

    // MARK: request plumbing

    /// The body as JSON, within the payload limit.
    func body(_ request: Request) async throws -> RequestJSON {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: options.payloadLimit) } catch is NIOTooManyBytesError {
            throw APIError.payloadTooLarge(options.payloadLimit)
        }
        return try RequestJSON(Data(buffer.readableBytesView))
    }

    /// Counts a request in progress for its lifetime; past the limit, 429.
    func admitted<T>(_ body: () async throws -> T) async throws -> T {
        guard inFlight.add(1) <= options.maxConcurrentRequests else {
            _ = inFlight.add(-1)
            throw APIError.overloaded("more than \(options.maxConcurrentRequests) requests in progress; try again")
        }
        defer { _ = inFlight.add(-1) }
        return try await body()
    }

    /// Encodes `text` (or a pair); an input past the model's length is truncated when
    /// `truncate`, else a 422 naming its length.
    func encode(_ text: String, pair: String? = nil, truncate: Bool) throws -> Encoding {
        var encoding: Encoding
        do { encoding = try model.tokenizer.encode(text, pair: pair) } catch {
            throw APIError.tokenizer("\(error)")
        }
        if encoding.count > model.maxInputLength {
            guard truncate else {
                throw APIError.validation(
                    "`inputs` must have less than \(model.maxInputLength) tokens. Given: \(encoding.count)")
            }
            var truncating = model.tokenizer
            truncating.truncation = Truncation(maxLength: model.maxInputLength)
            do { encoding = try truncating.encode(text, pair: pair) } catch { throw APIError.tokenizer("\(error)") }
        }
        return encoding
    }

    /// Runs jobs through the scheduler, each as soon as a batch has room, and times them.
    func schedule(_ jobs: [(Job, Int)]) async throws -> (outputs: [[Float]], timing: Timing) {
        let start = DispatchTime.now()
        var outputs = [[Float]](repeating: [], count: jobs.count)
        var timing = Timing()
        do {
            try await withThrowingTaskGroup(of: ScheduledJob.self) { group in
                for (i, (job, tokens)) in jobs.enumerated() {
                    group.addTask { (i, try await self.model.scheduler.submit(job, tokens: tokens)) }
                }
                for try await (i, scheduled) in group {
                    outputs[i] = scheduled.output
                    timing.queue = max(timing.queue, scheduled.queueSeconds)
                    timing.inference = max(timing.inference, scheduled.computeSeconds)
                    metrics.batchSize.record(Double(scheduled.batchSize))
                }
            }
        } catch let error as SchedulerError {
            switch error {
            case .overloaded: throw APIError.overloaded(error.description)
            case .shutDown: throw APIError.unhealthy(error.description)
            }
        } catch let error as APIError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as InputTooLongError {
            throw APIError.validation("\(error)")
        } catch {
            throw APIError.backend("\(error)")
        }
        timing.total = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        timing.tokens = jobs.reduce(0) { $0 + $1.1 }
        return (outputs, timing)
    }
}

/// A job's place in its request and its scheduled output.
typealias ScheduledJob = (Int, Bert.Scheduled<[Float]>)

/// What `x-compute-time`, `x-queue-time`, `x-inference-time` and `x-compute-tokens` report.
struct Timing {
    var total = 0.0
    var queue = 0.0
    var inference = 0.0
    var tokens = 0

    var headers: HTTPFields {
        func ms(_ s: Double) -> String { String(Int((s * 1000).rounded())) }
        var fields = HTTPFields()
        fields[HTTPField.Name("x-compute-time")!] = ms(total)
        fields[HTTPField.Name("x-queue-time")!] = ms(queue)
        fields[HTTPField.Name("x-inference-time")!] = ms(inference)
        fields[HTTPField.Name("x-compute-tokens")!] = String(tokens)
        return fields
    }
}

/// A lock-protected integer (requests in progress).
final class InFlight: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    /// Adds `n` and returns the new value.
    func add(_ n: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += n
        return value
    }
}

let serverVersion = "swift-bert 0.1"
