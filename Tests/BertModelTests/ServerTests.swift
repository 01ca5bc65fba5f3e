import Bert
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

// The batching scheduler on its own, then `bert serve` started for real on 127.0.0.1 with a free
// port: every route's answer against the library's, the errors text-embeddings-inference gives,
// concurrent clients, overload and a graceful stop.

struct BatchSchedulerTests {
    @Test func everyCallerGetsItsOwnResultInBatchesWithinTheBudget() async throws {
        let batches = BatchLog()
        let scheduler = BatchScheduler<Int, Int>(maxBatchTokens: 10, maxQueued: 1000) { inputs in
            batches.append(inputs.count)
            Thread.sleep(forTimeInterval: 0.002)  // let a queue build up
            return inputs.map { $0 * 3 }
        }
        defer { scheduler.shutDown() }
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for i in 0..<200 { group.addTask { (i, try await scheduler.submit(i, tokens: 1 + i % 4).output) } }
            var all: [Int: Int] = [:]
            for try await (i, r) in group { all[i] = r }
            return all
        }
        #expect(results.count == 200)
        #expect(results.allSatisfy { $0.value == $0.key * 3 })
        // Inputs of 1 to 4 tokens under a budget of 10: batched (fewer batches than inputs), none
        // over the budget's worth of inputs (10 of 1 token at most).
        #expect(batches.sizes.count < 200)
        #expect(batches.sizes.allSatisfy { $0 >= 1 && $0 <= 10 })
        #expect(batches.sizes.reduce(0, +) == 200)
    }

    @Test func anInputLongerThanTheBudgetRunsAlone() async throws {
        let batches = BatchLog()
        let scheduler = BatchScheduler<Int, Int>(maxBatchTokens: 8, maxQueued: 10) { inputs in
            batches.append(inputs.count)
            return inputs
        }
        defer { scheduler.shutDown() }
        #expect(try await scheduler.submit(7, tokens: 100).output == 7)
        #expect(batches.sizes == [1])
    }

    @Test func aFullQueueRefusesAndAFailingBatchFailsItsInputs() async throws {
        let gate = DispatchSemaphore(value: 0)
        let started = BatchLog()
        let scheduler = BatchScheduler<Int, Int>(maxBatchTokens: 1, maxQueued: 2) { inputs in
            started.append(inputs[0])
            gate.wait()
            if inputs == [13] { throw BertError.invalidInput("unlucky") }
            return inputs
        }
        defer { scheduler.shutDown() }
        // One running (held at the gate), two waiting: the fourth is refused.
        let running = Task { try await scheduler.submit(1, tokens: 1) }
        while started.sizes.isEmpty { try await Task.sleep(nanoseconds: 1_000_000) }
        let second = Task { try await scheduler.submit(2, tokens: 1) }
        while scheduler.queued < 1 { try await Task.sleep(nanoseconds: 1_000_000) }
        let third = Task { try await scheduler.submit(13, tokens: 1) }
        while scheduler.queued < 2 { try await Task.sleep(nanoseconds: 1_000_000) }
        await #expect(throws: SchedulerError.overloaded(limit: 2)) { try await scheduler.submit(4, tokens: 1) }
        for _ in 0..<3 { gate.signal() }
        #expect(try await running.value.output == 1)
        #expect(try await second.value.output == 2)
        await #expect(throws: BertError.invalidInput("unlucky")) { try await third.value }
        #expect(started.sizes == [1, 2, 13])
    }

    @Test func aCancelledCallerLeavesTheQueueUnrun() async throws {
        let gate = DispatchSemaphore(value: 0)
        let started = BatchLog()
        let scheduler = BatchScheduler<Int, Int>(maxBatchTokens: 1, maxQueued: 10) { inputs in
            started.append(inputs[0])
            gate.wait()
            return inputs
        }
        defer { scheduler.shutDown() }
        let first = Task { try await scheduler.submit(1, tokens: 1) }
        while started.sizes.isEmpty { try await Task.sleep(nanoseconds: 1_000_000) }
        let second = Task { try await scheduler.submit(2, tokens: 1) }
        while scheduler.queued < 1 { try await Task.sleep(nanoseconds: 1_000_000) }
        second.cancel()
        await #expect(throws: CancellationError.self) { try await second.value }
        #expect(scheduler.queued == 0)
        gate.signal()
        #expect(try await first.value.output == 1)
        let third = Task { try await scheduler.submit(3, tokens: 1) }
        gate.signal()
        #expect(try await third.value.output == 3)
        #expect(started.sizes == [1, 3])  // 2 never ran
    }
}

/// A thread-safe list of numbers (batch sizes, inputs run).
final class BatchLog: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int] = []
    func append(_ v: Int) {
        lock.lock()
        values.append(v)
        lock.unlock()
    }
    var sizes: [Int] {
        lock.lock()
        defer { lock.unlock() }
        return values
    }
}

/// `bert serve` on a free port of 127.0.0.1, stopped with SIGTERM at the end.
final class RunningServer: @unchecked Sendable {
    let process = Process()
    let port: Int
    private let errors = Pipe()

    init(_ arguments: [String]) throws {
        process.executableURL = bertExecutable()
        process.arguments = ["serve", "--port", "0"] + arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HF_") && $0.key != "BERT_API_KEY" }
        env["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        process.standardError = errors
        try process.run()
        // Drain stderr (the access log) so that the server never blocks on a full pipe.
        let handle = errors.fileHandleForReading
        Thread { _ = handle.readDataToEndOfFile() }.start()
        var line = Data()
        while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let colon = text.range(of: "127.0.0.1:"),
            let n = Int(text[colon.upperBound...].prefix { $0.isNumber })
        else {
            process.terminate()
            throw BertError.invalidInput("bert serve did not start: \(text)")
        }
        port = n
    }

    /// SIGTERM, then the exit status.
    func stop() -> Int32 {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

    struct Reply {
        var status: Int
        var body: Data
        var headers: [String: String]
        var json: Any? { try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) }
        var errorType: String? { (json as? [String: Any])?["error_type"] as? String }
        var errorText: String { ((json as? [String: Any])?["error"] as? String) ?? "" }
    }

    func call(_ method: String, _ path: String, body: Data? = nil, headers: [String: String] = [:]) async throws
        -> Reply
    {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.httpBody = body
        request.timeoutInterval = 60
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (k, v) in http.allHeaderFields { fields[String(describing: k).lowercased()] = String(describing: v) }
        return Reply(status: http.statusCode, body: data, headers: fields)
    }

    func post(_ path: String, _ object: Any, headers: [String: String] = [:]) async throws -> Reply {
        try await call(
            "POST", path, body: try JSONSerialization.data(withJSONObject: object, options: [.fragmentsAllowed]),
            headers: headers)
    }
}

/// Real sentences of mixed lengths.
private let serverSentences = [
    "A man is playing a guitar on stage.",
    "The stock market fell sharply today, as investors sold shares of technology companies.",
    "Rain.",
    "Ein Mann spielt Gitarre, und das Publikum hört zu.",
    "The committee, after months of deliberation and several public hearings, finally approved the plan "
        + "to rebuild the old bridge over the river, with work to start in the spring.",
    "猫はソファの上で寝ています。",
]

/// Equal within 1e-6: a batch of other inputs moves the last bits (the matrix kernels block rows
/// by batch), so a vector computed alone and one computed beside others differ by ~1e-7.
/// `clients` concurrent /embed requests, client c sending sentence c mod count: (sentence, vectors, status).
private func embedConcurrently(_ server: RunningServer, clients: Int) async throws -> [(Int, [[Float]], Int)] {
    typealias Reply = (Int, [[Float]], Int)
    return try await withThrowingTaskGroup(of: Reply.self) { group in
        for client in 0..<clients {
            group.addTask {
                let i = client % serverSentences.count
                let r = try await server.post("/embed", ["inputs": serverSentences[i]])
                return (i, floats(r.json), r.status)
            }
        }
        var all: [Reply] = []
        for try await reply in group { all.append(reply) }
        return all
    }
}

private func close(_ a: [[Float]], _ b: [[Float]]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { x, y in x.count == y.count && maxAbsDiff(x, y) <= 1e-6 }
}

private func floats(_ value: Any?) -> [[Float]] {
    ((value as? [[Any]]) ?? []).map { row in row.map { Float(truncating: $0 as! NSNumber) } }
}

@Suite(
    .enabled(
        if: ModelFixtures.required
            || (ModelFixtures.haveMiniLM && FileManager.default.isExecutableFile(atPath: bertExecutable().path))),
    .serialized)
struct ServerTests {
    /// `bert embed`'s vectors for the sentences, read at full Float precision.
    func libraryEmbeddings(_ texts: [String]) throws -> [[Float]] {
        let embedder = try SentenceEmbedder(folder: ModelFixtures.miniLMFolder)
        return try embedder.embed(texts)
    }

    @Test func embedEqualsTheLibraryAndTheOtherRoutesAnswer() async throws {
        let server = try RunningServer(["--model", ModelFixtures.miniLMFolder.path])
        let expected = try libraryEmbeddings(serverSentences)
        // One input on an idle server is a batch of one, as `bert embed` of one line: the same bits.
        for (i, sentence) in serverSentences.enumerated() {
            let alone = try await server.post("/embed", ["inputs": sentence])
            #expect(floats(alone.json) == [try libraryEmbeddings([sentence])[0]], "sentence \(i)")
        }
        let r = try await server.post("/embed", ["inputs": serverSentences])
        #expect(r.status == 200)
        #expect(close(floats(r.json), expected))
        for key in ["x-compute-time", "x-queue-time", "x-inference-time", "x-compute-tokens"] {
            #expect(r.headers[key] != nil, "\(key)")
        }
        // One text: still a list of one vector.
        let one = try await server.post("/embed", ["inputs": serverSentences[0]])
        #expect(close(floats(one.json), [expected[0]]))
        // Not normalised when asked; shortened to 64 numbers (and then normalised).
        let raw = try await server.post("/embed", ["inputs": serverSentences[0], "normalize": false])
        let rawVector = floats(raw.json)[0]
        #expect(abs(rawVector.reduce(0) { $0 + $1 * $1 }.squareRoot() - 1) > 1e-3)
        #expect(close([SentenceEmbedder.normalized(rawVector)], [expected[0]]))
        let short = try await server.post("/embed", ["inputs": serverSentences[0], "dimensions": 64])
        #expect(floats(short.json) == [SentenceEmbedder.normalized(Array(rawVector.prefix(64)))])

        // OpenAI's shape, floats and base64 (little-endian float32).
        let openAI = try await server.post("/v1/embeddings", ["input": serverSentences, "model": "minilm"])
        let object = try #require(openAI.json as? [String: Any])
        let data = try #require(object["data"] as? [[String: Any]])
        // One model served: any name is answered (OpenAI clients always send one), by the served name.
        #expect(object["model"] as? String == ModelFixtures.miniLMFolder.path && data.count == serverSentences.count)
        #expect(close(data.map { ($0["embedding"] as! [NSNumber]).map { Float(truncating: $0) } }, expected))
        #expect(((object["usage"] as? [String: Any])?["prompt_tokens"] as? Int ?? 0) > serverSentences.count * 2)
        let base64 = try await server.post(
            "/v1/embeddings", ["input": serverSentences[1], "encoding_format": "base64"])
        let encoded = try #require(
            ((base64.json as? [String: Any])?["data"] as? [[String: Any]])?.first?["embedding"] as? String)
        let bytes = try #require(Data(base64Encoded: encoded))
        let decoded = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        #expect(close([decoded], [expected[1]]))

        // Every token's last hidden state, alone on an idle server: the library's bits; their
        // mean is the un-normalised mean-pooled embedding.
        let embedder = try SentenceEmbedder(folder: ModelFixtures.miniLMFolder, normalize: false)
        let encoding = try embedder.tokenizer.encode(serverSentences[1])
        let states = try embedder.tokenStates(encodings: [encoding])[0]
        let all = try await server.post("/embed_all", ["inputs": serverSentences[1]])
        let tokenRows = try #require((all.json as? [[[NSNumber]]])?.first).map { $0.map { Float(truncating: $0) } }
        #expect(tokenRows.count == encoding.count && tokenRows.flatMap { $0 } == states)
        let mean = (0..<384).map { j in tokenRows.reduce(Float(0)) { $0 + $1[j] } / Float(tokenRows.count) }
        #expect(maxAbsDiff(mean, try embedder.embed([serverSentences[1]])[0]) < 1e-5)
        // Cosine similarity of each sentence to the first, from the normalised embeddings.
        let similar = try await server.post(
            "/similarity", ["inputs": ["source_sentence": serverSentences[0], "sentences": serverSentences]])
        let cosines = try #require(similar.json as? [NSNumber]).map { Float(truncating: $0) }
        let dots = expected.map { v in zip(expected[0], v).reduce(Float(0)) { $0 + $1.0 * $1.1 } }
        #expect(
            cosines.count == serverSentences.count && maxAbsDiff(cosines, dots) < 1e-5 && abs(cosines[0] - 1) < 1e-5)

        // Tokenize with UTF-8 byte offsets, decode back.
        let tokens = try await server.post("/tokenize", ["inputs": "Héllo world"])
        let list = try #require((tokens.json as? [[[String: Any]]])?.first)
        #expect(list.map { $0["id"] as? Int } == [101, 7592, 2088, 102])
        #expect(list[1]["start"] as? Int == 0 && list[1]["stop"] as? Int == 6 && list[1]["text"] as? String == "Héllo")
        #expect(list[0]["special"] as? Bool == true)
        let decoded2 = try await server.post("/decode", ["ids": [101, 7592, 2088, 102]])
        #expect(decoded2.json as? [String] == ["hello world"])

        let health = try await server.call("GET", "/health")
        #expect(health.status == 200)
        let info = try #require(try await server.call("GET", "/info").json as? [String: Any])
        #expect(info["max_input_length"] as? Int == 256 && info["max_batch_tokens"] as? Int == 16384)
        let metrics = String(decoding: try await server.call("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains("te_request_count{method=\"embed\"}") && metrics.contains("te_queue_size"))
        #expect(server.stop() == 0)
    }

    @Test func errorsAreTextEmbeddingsInferencesStatusesAndJSON() async throws {
        let server = try RunningServer([
            "--model", ModelFixtures.miniLMFolder.path, "--max-client-batch-size", "4",
            "--payload-limit", "10000",
        ])
        func expectError(
            _ r: RunningServer.Reply, _ status: Int, _ type: String, _ text: String,
            sourceLocation: SourceLocation = #_sourceLocation
        ) {
            #expect(r.status == status, "\(String(decoding: r.body, as: UTF8.self))", sourceLocation: sourceLocation)
            #expect(r.errorType == type && r.errorText.contains(text), "\(r.errorText)", sourceLocation: sourceLocation)
        }
        expectError(try await server.post("/embed", ["inputs": 5]), 422, "Validation", "`inputs` must be")
        expectError(try await server.post("/embed", ["inputs": ["ok", 7]]), 422, "Validation", "`inputs[1]`")
        expectError(try await server.post("/embed", ["inputs": ""]), 422, "Validation", "cannot be empty")
        expectError(try await server.post("/embed", ["inputs": [String]()]), 422, "Validation", "cannot be empty")
        expectError(try await server.post("/embed", ["text": "x"]), 422, "Validation", "missing field `inputs`")
        expectError(
            try await server.post("/embed", ["inputs": "x", "normalize": "yes"]), 422, "Validation", "`normalize`")
        expectError(
            try await server.post("/embed", ["inputs": Array(repeating: "x", count: 5)]), 422, "Validation",
            "client batch size 4")
        expectError(
            try await server.call("POST", "/embed", body: Data("{not json".utf8)), 422, "Validation", "not JSON")
        let long = String(repeating: "word ", count: 600)
        expectError(
            try await server.post("/embed", ["inputs": long]), 422, "Validation", "less than 256 tokens. Given: 602")
        let truncated = try await server.post("/embed", ["inputs": long, "truncate": true])
        #expect(truncated.status == 200 && floats(truncated.json).first?.count == 384)
        let big = Data(repeating: UInt8(ascii: " "), count: 20000)
        expectError(try await server.call("POST", "/embed", body: big), 413, "payload_limit", "10000 bytes")
        expectError(try await server.call("GET", "/no-such-route"), 404, "NotFound", "/no-such-route")
        // A classifier's route on an embedding model does not exist.
        expectError(try await server.post("/predict", ["inputs": "x"]), 404, "NotFound", "/predict")
        // The server is still there.
        #expect(try await server.post("/embed", ["inputs": "still serving"]).status == 200)
        #expect(server.stop() == 0)

        let locked = try RunningServer(["--model", ModelFixtures.miniLMFolder.path, "--api-key", "s3cret"])
        expectError(try await locked.post("/embed", ["inputs": "x"]), 401, "Unauthorized", "API key")
        expectError(
            try await locked.post("/embed", ["inputs": "x"], headers: ["Authorization": "Bearer wrong"]), 401,
            "Unauthorized", "API key")
        #expect(
            try await locked.post("/embed", ["inputs": "x"], headers: ["Authorization": "Bearer s3cret"]).status == 200)
        #expect(locked.stop() == 0)
    }

    @Test func concurrentClientsEachGetTheirOwnResult() async throws {
        let server = try RunningServer(["--model", ModelFixtures.miniLMFolder.path, "--max-batch-tokens", "512"])
        let expected = try libraryEmbeddings(serverSentences)
        let replies = try await embedConcurrently(server, clients: 64)
        #expect(replies.count == 64)
        for (i, vectors, status) in replies {
            #expect(status == 200)
            #expect(close(vectors, [expected[i]]), "sentence \(i)")
        }
        // The batches held several requests at once.
        let metrics = String(decoding: try await server.call("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains("te_batch_next_size_count"))
        #expect(server.stop() == 0)
    }

    @Test func anInt8ServerBatchesWithoutMixingRows() async throws {
        // int8 quantizes each row on its own and keeps each row's outliers in float, so a
        // sentence batched with others gets what it gets alone.
        let server = try RunningServer([
            "--model", ModelFixtures.miniLMFolder.path, "--max-batch-tokens", "512", "--precision", "int8",
        ])
        let embedder = try SentenceEmbedder(folder: ModelFixtures.miniLMFolder, precision: .int8)
        let alone = try serverSentences.map { try embedder.embed([$0])[0] }
        let float = try libraryEmbeddings(serverSentences)
        let replies = try await embedConcurrently(server, clients: 32)
        #expect(replies.count == 32)
        for (i, vectors, status) in replies {
            #expect(status == 200)
            #expect(close(vectors, [alone[i]]), "sentence \(i)")
            #expect(!close(vectors, [float[i]]), "sentence \(i): the fp32 result")
        }
        let info = try await server.call("GET", "/info")
        #expect(
            (try JSONSerialization.jsonObject(with: info.body) as? [String: Any])?["model_dtype"] as? String == "int8")
        #expect(server.stop() == 0)
    }

    @Test func overloadGives429AndTheServerKeepsServing() async throws {
        let server = try RunningServer(["--model", ModelFixtures.miniLMFolder.path, "--max-concurrent-requests", "2"])
        let long = String(repeating: "The committee approved the plan to rebuild the old bridge. ", count: 4)
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<24 {
                group.addTask { try await server.post("/embed", ["inputs": Array(repeating: long, count: 8)]).status }
            }
            var all: [Int] = []
            for try await s in group { all.append(s) }
            return all
        }
        #expect(statuses.contains(429), "\(statuses)")
        #expect(statuses.contains(200))
        #expect(statuses.allSatisfy { $0 == 200 || $0 == 429 })
        #expect(try await server.post("/embed", ["inputs": "after the storm"]).status == 200)
        #expect(server.stop() == 0)
    }

    @Test func sigtermLetsRequestsInFlightFinishThenExitsZero() async throws {
        let server = try RunningServer(["--model", ModelFixtures.miniLMFolder.path])
        let long = String(repeating: "A sentence that takes a little while to embed with the others. ", count: 3)
        // Four: URLSession opens at most six connections to a host, and each must be accepted.
        let inFlight = (0..<4).map { _ in
            Task { try await server.post("/embed", ["inputs": Array(repeating: long, count: 32)]) }
        }
        try await Task.sleep(nanoseconds: 300_000_000)
        kill(server.process.processIdentifier, SIGTERM)
        for task in inFlight {
            let r = try await task.value
            #expect(r.status == 200 && floats(r.json).count == 32)
        }
        #expect(server.stop() == 0)
    }

    @Test func aClassifierPredictsAndAOneLabelModelReranksAsTheLibrary() async throws {
        // Classifier folders from the real MiniLM with new heads (bert finetune --epochs 0).
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("bert-serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let train = scratch.appendingPathComponent("train.csv")
        try Data("text,label\ngood film,fresh\nbad film,rotten\n".utf8).write(to: train)
        let scores = scratch.appendingPathComponent("scores.csv")
        try Data("text,text_pair,label\na,b,0.5\nc,d,1.0\n".utf8).write(to: scores)
        for (task, data, out) in [("classify", train, "classifier"), ("regress", scores, "reranker")] {
            let r = try runBertCLI([
                "finetune", "--task", task, "--model", ModelFixtures.miniLMFolder.path, "--train", data.path,
                "--validation", data.path, "--out", scratch.appendingPathComponent(out).path, "--epochs", "0",
            ])
            try #require(r.status == 0, "\(r.stderr)")
        }
        let classifier = scratch.appendingPathComponent("classifier")
        let server = try RunningServer(["--model", classifier.path])
        // Three texts: a list of two texts is one pair, as in text-embeddings-inference.
        let texts = ["A gorgeous, moving film.", "Two hours I will never get back.", "The plot is thin."]
        let predicted = try runBertCLI(
            ["predict", "--model", classifier.path], stdin: Data((texts.joined(separator: "\n") + "\n").utf8))
        let lines = predicted.stdout.split(separator: "\n").map {
            try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        let batch = try #require(try await server.post("/predict", ["inputs": texts]).json as? [[[String: Any]]])
        #expect(batch.count == 3 && lines.count == 3)
        for (line, answer) in zip(lines, batch) {
            let probabilities = line["probabilities"] as! [String: Double]
            #expect(answer.first?["label"] as? String == line["label"] as? String)
            for entry in answer {
                let p = try #require(probabilities[entry["label"] as! String])
                #expect(abs((entry["score"] as! Double) - p) < 1e-6)
            }
        }
        let single = try await server.post("/predict", ["inputs": texts[0]])
        #expect((single.json as? [[String: Any]])?.count == 2)
        let pair = try await server.post("/predict", ["inputs": ["A film.", "It was good."], "raw_scores": true])
        #expect(pair.status == 200 && (pair.json as? [[String: Any]])?.count == 2)
        #expect(try await server.post("/rerank", ["query": "q", "texts": ["a"]]).status == 404)
        #expect(server.stop() == 0)

        let reranker = try RunningServer(["--model", scratch.appendingPathComponent("reranker").path])
        let candidates = ["Paris is the capital of France.", "Bananas are yellow.", "France's capital city is Paris."]
        let ranked = try #require(
            try await reranker.post(
                "/rerank", ["query": "What is the capital of France?", "texts": candidates, "return_text": true]
            ).json
                as? [[String: Any]])
        #expect(ranked.count == 3 && Set(ranked.map { $0["index"] as! Int }) == [0, 1, 2])
        let scoresOut = ranked.map { $0["score"] as! Double }
        #expect(scoresOut == scoresOut.sorted(by: >) && scoresOut.allSatisfy { $0 > 0 && $0 < 1 })
        #expect(ranked.allSatisfy { candidates[$0["index"] as! Int] == $0["text"] as? String })
        #expect(reranker.stop() == 0)
    }

    @Test func taggerAnswererAndMaskedLMServedTogetherAnswerAsBertPredictAndFillMask() async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("bert-serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        // A tagger and a question answerer on the real MiniLM with new heads (--epochs 0), and a
        // small pretrained model with its masked-LM head.
        let conll = scratch.appendingPathComponent("train.txt")
        try Data("John\tB-person\nSmith\tI-person\nvisited\tO\nParis\tB-geo-loc\n\n".utf8).write(to: conll)
        let squad = scratch.appendingPathComponent("squad.json")
        try Data(
            #"{"version": "v1.1", "data": [{"title": "t", "paragraphs": [{"context": "The cat sat on the mat.", "qas": [{"id": "q1", "question": "Where?", "answers": [{"text": "on the mat", "answer_start": 12}]}]}]}]}"#
                .utf8
        ).write(to: squad)
        let tagger = scratch.appendingPathComponent("tagger"), answerer = scratch.appendingPathComponent("qa")
        for (arguments, out) in [
            (["--task", "tag", "--train", conll.path, "--validation", conll.path], tagger),
            (
                [
                    "--task", "qa", "--train", squad.path, "--validation", squad.path, "--max-length", "48",
                    "--doc-stride", "16",
                ], answerer
            ),
        ] {
            let r = try runBertCLI(
                ["finetune", "--model", ModelFixtures.miniLMFolder.path, "--epochs", "0", "--out", out.path]
                    + arguments)
            try #require(r.status == 0, "\(r.stderr)")
        }
        let pretrained = try HardeningFixtures.shared.get().pretrained
        let server = try RunningServer([
            "--model", tagger.path, "--model", answerer.path, "--model", pretrained.path,
            "--served-name", "tagger", "--served-name", "qa", "--served-name", "mlm",
        ])

        // /tag: bert predict's words and entities, exactly (argmax of the same logits).
        let texts = ["Olá, Zoë visited Reykjavík with John Smith!", "Paris in the spring.", "   "]
        let predicted = try runBertCLI(
            ["predict", "--model", tagger.path], stdin: Data((texts.joined(separator: "\n") + "\n").utf8))
        let lines = predicted.stdout.split(separator: "\n").map {
            try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! NSDictionary
        }
        let tagged = try await server.post("/tag", ["inputs": texts])
        let answers = try #require(tagged.json as? [NSDictionary], "\(String(decoding: tagged.body, as: UTF8.self))")
        #expect(lines.count == 3 && answers == lines)
        let one = try await server.post("/tag", ["inputs": texts[0], "model": "tagger"])
        #expect(one.json as? NSDictionary == lines[0])

        // /answer: a context longer than one window (48 tokens, stride 16): the span bert predict picks.
        let context =
            "The old bridge over the river was built in 1850 by the town's engineers. It was closed in 1990 after a "
            + "flood damaged its piers. The committee approved a plan to rebuild it in 2024, and work started in the "
            + "spring with a budget of four million euros."
        let questions = ["When was the bridge built?", "What damaged the piers?", "How much is the budget?"]
        let qaInput = questions.map { #"{"question": "\#($0)", "context": "\#(context)"}"# }.joined(separator: "\n")
        let qaLines = try runBertCLI(["predict", "--model", answerer.path], stdin: Data((qaInput + "\n").utf8))
            .stdout.split(separator: "\n").map {
                try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
            }
        let qa = try await server.post(
            "/answer", ["inputs": questions.map { ["question": $0, "context": context] }, "model": "qa"])
        let spans = try #require(qa.json as? [[String: Any]], "\(String(decoding: qa.body, as: UTF8.self))")
        #expect(spans.count == 3 && qaLines.count == 3)
        for (line, span) in zip(qaLines, spans) {
            #expect(span["answer"] as? String == line["answer"] as? String)
            #expect(span["start"] as? Int == line["start"] as? Int && span["end"] as? Int == line["end"] as? Int)
            #expect(abs((span["score"] as! Double) - (line["score"] as! Double)) < 1e-4)
        }
        let single = try await server.post("/answer", ["inputs": ["question": questions[0], "context": context]])
        #expect((single.json as? [String: Any])?["answer"] as? String == qaLines[0]["answer"] as? String)

        // /fill-mask: bert fill-mask's tokens and probabilities (it prints three decimals).
        let masked = ["the [MASK] of the city .", "a [MASK] and a [MASK] ."]
        let filled = try runBertCLI(["fill-mask", "--model", pretrained.path, "--top-k", "3"] + masked)
        try #require(filled.status == 0, "\(filled.stderr)")
        let printed = filled.stdout.split(separator: "\n").filter { $0.hasPrefix("  [MASK]") }.map { line in
            let list = line[line.range(of: ": ")!.upperBound...]
            let items = try! NSRegularExpression(pattern: #"(\S+) (\d+\.\d{3})(, |$)"#)
                .matches(in: String(list), range: NSRange(list.startIndex..., in: list))
            return items.map { m -> (String, Double) in
                let text = String(list) as NSString
                return (text.substring(with: m.range(at: 1)), Double(text.substring(with: m.range(at: 2)))!)
            }
        }
        let fill = try await server.post("/fill-mask", ["inputs": masked, "top_k": 3])
        let perText = try #require(fill.json as? [[[[String: Any]]]], "\(String(decoding: fill.body, as: UTF8.self))")
        let perMask = perText.flatMap { $0 }
        #expect(perMask.count == 3 && printed.count == 3)
        for (served, shown) in zip(perMask, printed) {
            #expect(served.map { $0["token_str"] as! String } == shown.map(\.0))
            for (entry, (_, p)) in zip(served, shown) { #expect(abs((entry["score"] as! Double) - p) <= 0.0005 + 1e-6) }
        }
        // The masked-LM folder embeds too; the others name the model a route needs.
        #expect(try await server.post("/embed", ["inputs": "a city"]).status == 200)
        let noMask = try await server.post("/fill-mask", ["inputs": "no mask here"])
        #expect(noMask.status == 422 && noMask.errorText.contains("no [MASK]"))
        let wrong = try await server.post("/tag", ["inputs": "x", "model": "qa"])
        #expect(wrong.status == 422 && wrong.errorText.contains("does not answer /tag"))
        let unknown = try await server.post("/tokenize", ["inputs": "x", "model": "nobody"])
        #expect(unknown.status == 422 && unknown.errorText.contains("served: tagger, qa, mlm"))
        let models = try #require(
            (try await server.call("GET", "/models").json as? [String: Any])?["data"] as? [[String: Any]])
        #expect(models.map { $0["id"] as? String } == ["tagger", "qa", "mlm"])
        let info = try #require(try await server.call("GET", "/info").json as? [String: Any])
        #expect(
            (info["models"] as? [[String: Any]])?.map { $0["architecture"] as? String } == [
                "BertForTokenClassification", "BertForQuestionAnswering", "BertForPreTraining",
            ])
        // Two models of one name, or names that do not match the models, are refused at start.
        let clash = try runBertCLI([
            "serve", "--port", "0", "--model", tagger.path, "--model", answerer.path, "--served-name", "a",
            "--served-name", "a",
        ])
        #expect(clash.status != 0 && !clash.crashed && clash.stderr.contains("two models are served as 'a'"))
        let count = try runBertCLI([
            "serve", "--port", "0", "--model", tagger.path, "--served-name", "a", "--served-name", "b",
        ])
        #expect(count.status != 0 && !count.crashed && count.stderr.contains("once per --model"))
        #expect(server.stop() == 0)
    }

    @Test func aClosedConnectionDropsItsQueuedInputsUnrun() async throws {
        // A token budget of one long input per batch: two requests of 32 are 64 batches, so
        // what comes after them waits.
        let server = try RunningServer(["--model", ModelFixtures.miniLMFolder.path, "--max-batch-tokens", "64"])
        let long = String(repeating: "The committee approved the plan to rebuild the old bridge. ", count: 20)
        let ahead = (0..<2).map { _ in
            Task { try await server.post("/embed", ["inputs": Array(repeating: long, count: 32), "truncate": true]) }
        }
        try await Task.sleep(nanoseconds: 300_000_000)
        // A client that sends 16 more inputs and hangs up at once, on a raw socket.
        let body = try JSONSerialization.data(withJSONObject: [
            "inputs": Array(repeating: long, count: 16), "truncate": true,
        ])
        let head =
            "POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.count)\r\n\r\n"
        try sendAndHangUp(port: server.port, Data(head.utf8) + body)
        for task in ahead {
            let r = try await task.value
            #expect(r.status == 200 && floats(r.json).count == 32)
        }
        // The server saw the closed connection (it checks every 20 ms) and ran none of its inputs.
        var metrics = ""
        for _ in 0..<100 {
            metrics = String(decoding: try await server.call("GET", "/metrics").body, as: UTF8.self)
            if metrics.contains("te_request_client_gone") { break }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        #expect(metrics.contains("te_request_client_gone 1"), "\(metrics)")
        let ran = metrics.split(separator: "\n").first { $0.hasPrefix("te_batch_inputs_run ") }
        let count = try #require(ran.flatMap { Double($0.split(separator: " ")[1]) })
        #expect(count == 64, "inputs run: \(count)")
        #expect(try await server.post("/embed", ["inputs": "still serving"]).status == 200)
        #expect(server.stop() == 0)
    }

    @Test func badServerOptionsAreRefusedWithAMessage() async throws {
        let model = ModelFixtures.miniLMFolder.path
        for (options, message) in [
            (["--port", "70000"], "--port must be between 0 and 65535"),
            (["--port", "-1"], "--port must be between 0 and 65535"),
            (["--max-batch-tokens", "0"], "--max-batch-tokens must be at least 1"),
            (["--max-concurrent-requests", "-5"], "--max-concurrent-requests must be at least 1"),
            (["--max-client-batch-size", "0"], "--max-client-batch-size must be at least 1"),
            (["--payload-limit", "-1"], "--payload-limit must be at least 1"),
            (["--max-batch-tokens", "99999999999999999999999"], "--max-batch-tokens"),
            (["--host", "no such host\r\n"], "the server stopped"),
            (["--served-name", ""], "is empty"),
        ] {
            let r = try runBertCLI(["serve", "--model", model, "--port", "0"] + options, timeout: 60)
            #expect(r.status != 0 && !r.crashed && !r.timedOut, "\(options)")
            #expect(r.stderr.contains(message), "\(options): \(r.stderr)")
        }
        // Huge limits are limits, not overflows: the server starts and answers.
        let huge = try RunningServer([
            "--model", model, "--max-concurrent-requests", "\(Int.max)", "--max-client-batch-size", "\(Int.max)",
            "--max-batch-tokens", "\(Int.max)", "--payload-limit", "\(Int.max)",
        ])
        #expect(try await huge.post("/embed", ["inputs": "fine"]).status == 200)
        #expect(huge.stop() == 0)
    }
}

/// Connects to 127.0.0.1:port, sends `data` and closes the socket without reading the answer.
private func sendAndHangUp(port: Int, _ data: Data) throws {
    #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { throw BertError.invalidInput("no socket") }
    defer {
        #if canImport(Glibc)
            _ = Glibc.close(fd)
        #else
            _ = Darwin.close(fd)
        #endif
    }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { throw BertError.invalidInput("cannot connect to port \(port)") }
    let sent = data.withUnsafeBytes { send(fd, $0.baseAddress, data.count, 0) }
    guard sent == data.count else { throw BertError.invalidInput("sent \(sent) of \(data.count) bytes") }
    usleep(50_000)  // the server has read the request before the connection closes
}
