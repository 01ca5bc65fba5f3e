import ArgumentParser
import Bert
import BertCompute
import BertHub
import BertServer
import Foundation
import Logging

/// `bert serve`: the HTTP inference server (text-embeddings-inference's routes) for one or more
/// models.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve models over HTTP (text-embeddings-inference's API), with dynamic batching.",
        discussion: """
            Routes by head: embedding and sentence-transformers folders /embed, /embed_all, \
            /similarity, /v1/embeddings; sequence classifiers /predict (and /rerank with one label); \
            token classifiers /tag; question answering /answer; masked-LM (pretraining) folders \
            /fill-mask and the embedding routes. Every model: /tokenize, /decode. The server: \
            /health, /info, /metrics, /models. With several --model, a request's "model" field \
            names the one it is for (default: the first that answers the route).
            """)

    @Option(help: "A model folder, or a Hugging Face model id (ORG/NAME); repeat it to serve several.")
    var model: [String]
    @OptionGroup var hub: RevisionOption
    @Option(help: "The name a model is served as, once per --model, in order (default: --model as given).")
    var servedName: [String] = []
    @Option(help: "The address to listen on (loopback unless told otherwise).") var host = "127.0.0.1"
    @Option(help: "The port to listen on (0: any free port; the one bound is printed).") var port = 3000
    @Option(help: "Tokens in one batch across concurrent requests.") var maxBatchTokens = 16384
    @Option(help: "Requests in progress at once; past it, 429.") var maxConcurrentRequests = 512
    @Option(help: "Inputs in one request.") var maxClientBatchSize = 32
    @Option(help: "The largest request body in bytes; past it, 413.") var payloadLimit = 2_000_000
    @Flag(help: "Truncate inputs longer than the model takes (default: answer 422).") var autoTruncate = false
    @Option(help: "Require 'Authorization: Bearer KEY' on every request (default: $BERT_API_KEY, if set).")
    var apiKey: String?
    @OptionGroup var threads: ThreadOption
    @OptionGroup var numbers: PrecisionOption

    func validate() throws {
        if model.isEmpty { throw ValidationError("give at least one --model") }
        if !servedName.isEmpty && servedName.count != model.count {
            throw ValidationError(
                "give --served-name once per --model (\(model.count) models, \(servedName.count) names)")
        }
        if let empty = servedName.first(where: { $0.isEmpty }) {
            throw ValidationError("--served-name '\(empty)' is empty")
        }
        if !(0...65535).contains(port) { throw ValidationError("--port must be between 0 and 65535") }
        for (name, value) in [
            ("--max-batch-tokens", maxBatchTokens), ("--max-concurrent-requests", maxConcurrentRequests),
            ("--max-client-batch-size", maxClientBatchSize), ("--payload-limit", payloadLimit),
        ] where value < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
    }

    func run() throws {
        // Compute threads: what --threads says, else the cores this process may use (a cgroup
        // CPU limit counts), never more.
        threads.apply()
        if threads.threads == nil { Compute.threads = availableCores() }
        let names = servedName.isEmpty ? model : servedName
        let models = try zip(model, names).map { ModelToServe(folder: try hub.folder($0), name: $1) }
        var options = ServerOptions()
        options.host = host
        options.port = port
        options.maxBatchTokens = maxBatchTokens
        options.maxConcurrentRequests = maxConcurrentRequests
        options.maxClientBatchSize = maxClientBatchSize
        options.payloadLimit = payloadLimit
        options.autoTruncate = autoTruncate
        options.precision = numbers.precision
        options.apiKey = apiKey ?? ProcessInfo.processInfo.environment["BERT_API_KEY"]
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "bert.serve")
        let server = try InferenceServer(models: models, options: options, logger: logger)
        let host = host
        let outcome = Outcome()
        Task {
            do {
                try await server.run { port in
                    // Unbuffered: a script waiting for this line sees it at once.
                    let line = "listening on http://\(host):\(port) (\(Compute.threads) compute threads)\n"
                    FileHandle.standardOutput.write(Data(line.utf8))
                }
            } catch { outcome.error = error }
            outcome.done.signal()
        }
        outcome.done.wait()
        if let error = outcome.error { throw CLIError("the server stopped: \(error)") }
    }
}

/// How the server's task ended, read on the main thread once it has.
private final class Outcome: @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)
    var error: (any Error)?
}
