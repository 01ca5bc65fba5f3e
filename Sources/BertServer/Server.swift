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

/// The request context of the server's routes: Hummingbird's, with the request's connection
/// (a request whose client has gone is dropped from the batch queue).
struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// A model folder to serve and the name requests call it by.
public struct ModelToServe: Sendable {
    /// The model folder.
    public var folder: URL
    /// The name requests give in `"model"` (and `/models`, `/info` list).
    public var name: String
    /// A folder served as `name`.
    public init(folder: URL, name: String) {
        self.folder = folder
        self.name = name
    }
}

/// An HTTP inference server for one or more model folders, with text-embeddings-inference's
/// routes, limits and errors, dynamic batching across requests, Prometheus metrics, an access log
/// and a graceful stop on SIGTERM or SIGINT (requests in flight finish; then it returns).
public final class InferenceServer: @unchecked Sendable {
    let options: ServerOptions
    let models: [ServedModel]
    let metrics: ServerMetrics
    let logger: Logger
    private let inFlight = InFlight()

    /// A server for `models` (at least one, names unique); every model is loaded here. Each
    /// model batches its own requests; their batches take turns on the compute threads.
    public init(models: [ModelToServe], options: ServerOptions, logger: Logger) throws {
        guard !models.isEmpty else { throw BertError.invalidInput("no model to serve") }
        var names = Set<String>()
        for m in models where !names.insert(m.name).inserted {
            throw BertError.invalidInput("two models are served as '\(m.name)': give each its own --served-name")
        }
        self.options = options
        self.logger = logger
        let gate = ComputeGate()
        // Every request in progress may queue a full client batch (saturating: the limits may be huge).
        let (product, overflow) = options.maxConcurrentRequests.multipliedReportingOverflow(
            by: options.maxClientBatchSize)
        let maxQueued = overflow ? Int.max : max(product, 1)
        self.models = try models.map {
            try ServedModel(
                name: $0.name, folder: $0.folder, maxBatchTokens: options.maxBatchTokens, maxQueued: maxQueued,
                gate: gate, precision: options.precision)
        }
        metrics = ServerMetrics()
    }

    /// A server for the model in `folder`, served as `name`.
    public convenience init(folder: URL, name: String, options: ServerOptions, logger: Logger) throws {
        try self.init(models: [ModelToServe(folder: folder, name: name)], options: options, logger: logger)
    }

    /// Serves until SIGTERM or SIGINT; `listening` is called with the bound port.
    public func run(listening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let router = Router(context: ServerContext.self)
        router.add(middleware: AccessLog(logger: logger, metrics: metrics))
        router.add(middleware: Guard(server: self))
        addRoutes(to: router)
        let app = Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [HangUpHandler()])),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "bert"),
            onServerRunning: { channel in listening(channel.localAddress?.port ?? 0) },
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        for model in models { model.scheduler.shutDown() }
    }

    func addRoutes(to router: Router<ServerContext>) {
        router.get("/health") { _, _ in try jsonResponse([String: Any]()) }
        router.get("/info") { [self] _, _ in try jsonResponse(info()) }
        router.get("/metrics") { [self] _, _ in
            metrics.queueSize.set(Double(models.reduce(0) { $0 + $1.scheduler.queued }))
            metrics.inputsRun.set(Double(models.reduce(0) { $0 + $1.scheduler.inputsRun }))
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.registry.emitToString())))
        }
        router.get("/models") { [self] _, _ in
            try jsonResponse([
                "object": "list",
                "data": models.map {
                    ["id": $0.name, "object": "model", "owned_by": "swift-bert", "architecture": $0.architecture]
                },
            ])
        }
        router.post("/tokenize") { [self] request, _ in try await tokenize(request) }
        router.post("/decode") { [self] request, _ in try await decode(request) }
        let served = Set(models.flatMap(\.routes))
        func add(_ route: Route, _ handler: @escaping @Sendable (Request, ServerContext) async throws -> Response) {
            if served.contains(route) { router.post(RouterPath(route.rawValue), use: handler) }
        }
        add(.embed) { [self] in try await embed($0, $1) }
        add(.embedAll) { [self] in try await embedAll($0, $1) }
        add(.similarity) { [self] in try await similarity($0, $1) }
        add(.openAIEmbeddings) { [self] in try await openAIEmbeddings($0, $1) }
        add(.predict) { [self] in try await predict($0, $1) }
        add(.rerank) { [self] in try await rerank($0, $1) }
        add(.tag) { [self] in try await tag($0, $1) }
        add(.answer) { [self] in try await answer($0, $1) }
        add(.fillMask) { [self] in try await fillMask($0, $1) }
    }

    /// The model a request is for: the one its `"model"` names, else the first served model
    /// that answers `route` (nil: any model, for /tokenize and /decode). OpenAI clients always
    /// name a model: on /v1/embeddings a server of one model answers whatever name is given, as
    /// text-embeddings-inference does.
    func model(for route: Route?, _ json: RequestJSON) throws -> ServedModel {
        if let name = try json.string("model"), !(route == .openAIEmbeddings && models.count == 1) {
            guard let model = models.first(where: { $0.name == name }) else {
                throw APIError.validation(
                    "`model` '\(name)' is not served here (served: \(models.map(\.name).joined(separator: ", ")))")
            }
            if let route, !model.routes.contains(route) {
                throw APIError.validation("model '\(name)' (\(model.architecture)) does not answer \(route.rawValue)")
            }
            return model
        }
        guard let model = models.first(where: { route == nil || $0.routes.contains(route!) }) else {
            throw APIError.notFound(route?.rawValue ?? "")
        }
        return model
    }

    /// The precision as TEI's /info names dtypes (int8 is this server's own).
    func dtypeName(_ precision: Precision) -> String {
        switch precision {
        case .fp32: "float32"
        case .bf16: "bfloat16"
        case .int8: "int8"
        }
    }

    func info() -> [String: Any] {
        func type(_ model: ServedModel) -> [String: Any] {
            switch model.head {
            case .embedder(let e), .maskedLM(_, let e):
                var type: [String: Any] = [
                    "embedding": [
                        "pooling": e.pooling.map(\.rawValue).joined(separator: "+"), "dimension": e.dimension,
                    ]
                ]
                if case .maskedLM = model.head { type["fill_mask"] = [String: Any]() }
                return type
            case .classifier(let network):
                return [
                    "classifier": [
                        "id2label": Dictionary(
                            uniqueKeysWithValues: network.labels.enumerated().map { ("\($0.offset)", $0.element) })
                    ]
                ]
            case .tagger(let tagger):
                return ["token_classifier": ["labels": tagger.model.labels]]
            case .answerer(let answerer):
                return [
                    "question_answering": [
                        "max_length": answerer.qa.maxLength, "doc_stride": answerer.qa.docStride,
                        "max_query_length": answerer.qa.maxQueryLength,
                        "max_answer_length": answerer.qa.maxAnswerLength, "allow_null": answerer.qa.allowNull,
                    ]
                ]
            }
        }
        let first = models[0]
        return [
            "model_id": first.name, "model_type": type(first), "max_concurrent_requests": options.maxConcurrentRequests,
            "max_input_length": first.maxInputLength, "max_batch_tokens": options.maxBatchTokens,
            "max_client_batch_size": options.maxClientBatchSize, "auto_truncate": options.autoTruncate,
            "payload_limit": options.payloadLimit, "compute_threads": Compute.threads, "version": serverVersion,
            "model_dtype": dtypeName(options.precision),
            "models": models.map {
                [
                    "model_id": $0.name, "architecture": $0.architecture, "model_type": type($0),
                    "max_input_length": $0.maxInputLength, "routes": $0.routes.map(\.rawValue).sorted(),
                ] as [String: Any]
            },
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
    func encode(_ text: String, pair: String? = nil, truncate: Bool, for model: ServedModel) throws -> Encoding {
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

    /// Runs jobs through the model's scheduler, each as soon as a batch has room, and times them.
    /// When the request's connection closes first, its jobs still waiting leave the queue unrun.
    func schedule(_ jobs: [Job], on model: ServedModel, _ context: ServerContext) async throws -> (
        outputs: [[Float]], timing: Timing
    ) {
        let start = DispatchTime.now()
        var outputs = [[Float]](repeating: [], count: jobs.count)
        var timing = Timing()
        let channel = context.channel
        do {
            try await withThrowingTaskGroup(of: ScheduledJob?.self) { group in
                for (i, job) in jobs.enumerated() {
                    group.addTask { (i, try await model.scheduler.submit(job, tokens: job.tokens)) }
                }
                // The client's side: a closed connection cancels the request's waiting jobs.
                group.addTask {
                    while channel.isActive { try await Task.sleep(nanoseconds: 20_000_000) }
                    throw ClientGone()
                }
                var left = jobs.count
                while left > 0, let next = try await group.next() {
                    guard let (i, scheduled) = next else { continue }
                    outputs[i] = scheduled.output
                    timing.queue = max(timing.queue, scheduled.queueSeconds)
                    timing.inference = max(timing.inference, scheduled.computeSeconds)
                    metrics.batchSize.record(Double(scheduled.batchSize))
                    left -= 1
                }
                group.cancelAll()
            }
        } catch let error as SchedulerError {
            switch error {
            case .overloaded: throw APIError.overloaded(error.description)
            case .shutDown: throw APIError.unhealthy(error.description)
            }
        } catch let error as APIError {
            throw error
        } catch is ClientGone {
            metrics.clientGone()
            throw CancellationError()
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as InputTooLongError {
            throw APIError.validation("\(error)")
        } catch {
            throw APIError.backend("\(error)")
        }
        if let bad = outputs.firstIndex(where: { !$0.allSatisfy(\.isFinite) }) {
            throw APIError.backend("the model's output for input \(bad) is not finite (NaN or infinite)")
        }
        timing.total = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        timing.tokens = jobs.reduce(0) { $0 + $1.tokens }
        return (outputs, timing)
    }
}

/// The request's client closed its connection before the answer.
struct ClientGone: Error {}

/// Closes a connection whose client has closed its side. The server allows half-closed
/// connections, so without this a client that hung up would leave its request's inputs in the
/// batch queue to be computed for no one; once the connection is closed, `schedule` sees it and
/// drops them. (A client that half-closes and still waits for its answer loses it, as with
/// hyper's default, which text-embeddings-inference runs on.)
final class HangUpHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
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
