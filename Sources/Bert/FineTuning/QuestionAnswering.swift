import BertCompute
import BertTokenizer
import Foundation

/// A SQuAD question: its context, the gold answers (text and character start in the context, in
/// Unicode scalars) and whether it has no answer (SQuAD 2.0).
public struct SquadExample: Sendable {
    public var id: String
    /// The question asked of `context`.
    public var question: String
    /// The paragraph the answer is taken from.
    public var context: String
    /// Gold answers: text and start in `context`, in Unicode scalars; training uses the first.
    public var answers: [(text: String, start: Int)]
    /// The context holds no answer (SQuAD 2.0's is_impossible).
    public var isImpossible: Bool
    /// A question from its fields; without answers and answerable by default.
    public init(
        id: String, question: String, context: String, answers: [(text: String, start: Int)] = [],
        isImpossible: Bool = false
    ) {
        self.id = id
        self.question = question
        self.context = context
        self.answers = answers
        self.isImpossible = isImpossible
    }
}

/// Reads SQuAD v1.1 / v2.0 JSON ({"data": [{"paragraphs": [{"context", "qas": [{"id", "question",
/// "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}). An answer whose text is not at
/// its answer_start in the context is an error naming the question.
public func readSquad(_ url: URL, requireAnswers: Bool = true) throws -> [SquadExample] {
    let text = try readTextFile(url)
    guard let root = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
        let articles = root["data"] as? [[String: Any]]
    else {
        throw BertError.malformedFile(
            path: url.path, reason: "not SQuAD JSON (expected an object with a \"data\" list)")
    }
    var result: [SquadExample] = []
    for (a, article) in articles.enumerated() {
        guard let paragraphs = article["paragraphs"] as? [[String: Any]] else {
            throw BertError.malformedFile(path: url.path, reason: "data[\(a)] has no paragraphs")
        }
        for (p, paragraph) in paragraphs.enumerated() {
            guard let context = paragraph["context"] as? String, let qas = paragraph["qas"] as? [[String: Any]] else {
                throw BertError.malformedFile(
                    path: url.path, reason: "data[\(a)].paragraphs[\(p)] needs context and qas")
            }
            let scalars = Array(context.unicodeScalars)
            for (q, qa) in qas.enumerated() {
                let id = (qa["id"] as? String) ?? (qa["id"].map { "\($0)" } ?? "\(a)-\(p)-\(q)")
                guard let question = qa["question"] as? String else {
                    throw BertError.malformedFile(path: url.path, reason: "question \(id) has no text")
                }
                let impossible = (qa["is_impossible"] as? Bool) ?? false
                var answers: [(String, Int)] = []
                for answer in (qa["answers"] as? [[String: Any]]) ?? [] {
                    guard let text = answer["text"] as? String,
                        let start = (answer["answer_start"] as? NSNumber)?.intValue
                    else {
                        throw BertError.malformedFile(
                            path: url.path, reason: "question \(id): an answer needs text and answer_start")
                    }
                    let n = text.unicodeScalars.count
                    // start <= count - n, not start + n <= count: an answer_start near Int.max must not overflow.
                    guard start >= 0, n <= scalars.count, start <= scalars.count - n,
                        String(String.UnicodeScalarView(scalars[start..<start + n])) == text
                    else {
                        throw BertError.malformedFile(
                            path: url.path,
                            reason: "question \(id): answer '\(text)' is not at character \(start) of its context")
                    }
                    answers.append((text, start))
                }
                if requireAnswers && !impossible && answers.isEmpty {
                    throw BertError.malformedFile(
                        path: url.path, reason: "question \(id) has no answers and is not marked is_impossible")
                }
                result.append(
                    SquadExample(
                        id: id, question: question, context: context, answers: answers, isImpossible: impossible))
            }
        }
    }
    return result
}

/// SQuAD's official scoring: answers normalised (lowercase, punctuation and the articles a/an/the
/// removed, whitespace collapsed); exact match and token F1, the best over the gold answers; a
/// question without answers scores 1 only for an empty prediction.
public enum SquadMetrics {
    /// An answer as SQuAD compares it: lowercased, ASCII punctuation and symbols and the articles
    /// a/an/the removed, whitespace collapsed to single spaces.
    public static func normalize(_ s: String) -> String {
        let lower = s.lowercased()
        let noPunct = String(
            String.UnicodeScalarView(
                lower.unicodeScalars.filter {
                    !($0.isASCII && CharacterSet.punctuationCharacters.union(.symbols).contains($0))
                }))
        let words = noPunct.split(whereSeparator: { $0.isWhitespace }).filter { !["a", "an", "the"].contains($0) }
        return words.joined(separator: " ")
    }

    /// 1 when the normalised prediction equals a normalised gold answer, else 0; with no gold
    /// answers, 1 only for an empty prediction.
    public static func exactMatch(_ prediction: String, _ gold: [String]) -> Double {
        if gold.isEmpty { return prediction.isEmpty ? 1 : 0 }
        return gold.contains { normalize($0) == normalize(prediction) } ? 1 : 0
    }

    /// The best token-overlap F1 (0...1) of the normalised prediction against each gold answer; with
    /// no gold answers, 1 only for an empty prediction.
    public static func f1(_ prediction: String, _ gold: [String]) -> Double {
        if gold.isEmpty { return prediction.isEmpty ? 1 : 0 }
        let p = normalize(prediction).split(separator: " ")
        return gold.map { g -> Double in
            let t = normalize(g).split(separator: " ")
            if p.isEmpty || t.isEmpty { return p.isEmpty && t.isEmpty ? 1 : 0 }
            var counts: [Substring: Int] = [:]
            for w in t { counts[w, default: 0] += 1 }
            var common = 0
            for w in p where (counts[w] ?? 0) > 0 { common += 1; counts[w]! -= 1 }
            if common == 0 { return 0 }
            let precision = Double(common) / Double(p.count), recall = Double(common) / Double(t.count)
            return 2 * precision * recall / (precision + recall)
        }.max() ?? 0
    }
}

/// Settings of extractive question answering (as transformers' run_qa.py defaults).
public struct QAOptions: Sendable {
    /// Tokens per window, question and special tokens included (default 384).
    public var maxLength = 384
    /// Overlap of consecutive context windows, in tokens (default 128).
    public var docStride = 128
    /// Question tokens kept; the rest of a longer question is cut (default 64).
    public var maxQueryLength = 64
    /// Longest predicted answer, in tokens (default 30).
    public var maxAnswerLength = 30
    /// Start and end candidates (the highest logits) per window paired into spans (default 20).
    public var nBest = 20
    /// SQuAD 2.0: answer "" when the null score exceeds the best span's by more than this.
    public var nullThreshold = 0.0
    /// Whether a null answer may be predicted (SQuAD 2.0 data).
    public var allowNull = false
    /// The defaults of run_qa.py, without null answers (SQuAD 1.1).
    public init() {}

    /// The file beside a fine-tuned QA model that keeps these settings.
    public static let fileName = "qa_settings.json"

    /// The settings kept in a model folder's qa_settings.json; defaults when the folder has none.
    public init(folder: URL) throws {
        self.init()
        let url = folder.appendingPathComponent(Self.fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        guard let data = try? Data(contentsOf: url),
            let s = try? JSONSerialization.jsonObject(with: droppingByteOrderMark(data)) as? [String: Any]
        else {
            throw BertError.malformedFile(path: url.path, reason: "not a JSON object")
        }
        func int(_ key: String, _ value: inout Int, minimum: Int) throws {
            guard let v = s[key] else { return }
            guard let n = v as? Int, n >= minimum else {
                throw BertError.malformedFile(
                    path: url.path, reason: "\(key) must be an integer of at least \(minimum)")
            }
            value = n
        }
        try int("max_length", &maxLength, minimum: 4)
        try int("doc_stride", &docStride, minimum: 0)
        try int("max_query_length", &maxQueryLength, minimum: 1)
        try int("max_answer_length", &maxAnswerLength, minimum: 1)
        try int("n_best", &nBest, minimum: 1)
        if let v = s["null_threshold"] {
            guard let n = (v as? NSNumber)?.doubleValue, n.isFinite else {
                throw BertError.malformedFile(path: url.path, reason: "null_threshold must be a number")
            }
            nullThreshold = n
        }
        if let v = s["version_2_with_negative"] {
            guard let b = v as? Bool else {
                throw BertError.malformedFile(path: url.path, reason: "version_2_with_negative must be true or false")
            }
            allowNull = b
        }
    }

    /// Writes qa_settings.json into `folder`.
    public func write(to folder: URL) throws {
        let object: [String: Any] = [
            "max_length": maxLength, "doc_stride": docStride, "max_query_length": maxQueryLength,
            "max_answer_length": maxAnswerLength, "n_best": nBest, "null_threshold": nullThreshold,
            "version_2_with_negative": allowNull,
        ]
        try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            .write(to: folder.appendingPathComponent(Self.fileName), options: .atomic)
    }
}

/// One window of a question over its context.
public struct QAFeature: Sendable {
    /// Index of the window's question in the examples given to `features`.
    public var example: Int
    /// The window's token ids: [CLS] question [SEP] part of the context [SEP].
    public var ids: [Int32]
    /// Token type ids: 0 for the question, 1 for the context.
    public var typeIds: [Int32]
    /// Character span in the context of each token (nil for question and special tokens).
    public var contextOffsets: [(start: Int, end: Int)?]
    /// Token index of the answer's first token in the window; 0 ([CLS]) when the window lacks it.
    public var startPosition: Int
    /// Token index of the answer's last token (inclusive); 0 ([CLS]) when the window lacks it.
    public var endPosition: Int
}

/// The start and end logits of one window's tokens.
public struct WindowLogits: Sendable {
    /// The start logit of each token of the window.
    public var start: [Float]
    /// The end logit of each token of the window.
    public var end: [Float]
    /// Logits of a window's tokens.
    public init(start: [Float], end: [Float]) {
        self.start = start
        self.end = end
    }
}

/// A predicted answer.
public struct QAPrediction: Sendable {
    public var id: String
    /// The answer, a slice of the context; "" for no answer.
    public var text: String
    /// Where the answer starts in the context, in Unicode scalars (0 for no answer).
    public var start: Int
    /// Where the answer ends in the context (exclusive), in Unicode scalars (0 for no answer).
    public var end: Int
    /// The best span's start logit plus end logit (−∞ when no window gave a span).
    public var score: Float
    /// The no-answer score: the smallest [CLS] start plus end logit over the question's windows.
    public var nullScore: Float
}

/// Fine-tunes and runs a BertForQuestionAnswering on SQuAD-style data: questions over long
/// contexts become overlapping windows; the best span is chosen over every window.
public final class QuestionAnswerer {
    /// The question-answering model trained and run.
    public let model: BertForQuestionAnswering
    /// The tokenizer without padding, its offsets in Unicode scalars.
    public let tokenizer: BertTokenizer
    /// The training settings; `batchSize` counts windows, not questions (`qa` sets the windows).
    public let options: FineTuneOptions
    /// How windows are cut and answers chosen; saved with the model as qa_settings.json.
    public let qa: QAOptions
    /// Where `save` writes (nil: a model opened for prediction only).
    public let output: OutputFolder?

    /// An answerer for `model` that tokenizes with `tokenizer` (no padding, offsets in Unicode
    /// scalars) and saves to `output`.
    public init(
        model: BertForQuestionAnswering, tokenizer: BertTokenizer, options: FineTuneOptions, qa: QAOptions,
        output: OutputFolder? = nil
    ) {
        self.model = model
        var t = tokenizer
        t.padding = nil
        t.offsetUnit = .unicodeScalars
        self.tokenizer = t
        self.options = options
        self.qa = qa
        self.output = output
    }

    /// The windows of examples: question first (cut to maxQueryLength tokens), the context cut
    /// into windows of maxLength tokens overlapping by docStride; the answer's token span, or
    /// [CLS] (position 0) when the window does not contain it or there is none.
    public func features(_ examples: [SquadExample]) throws -> [QAFeature] {
        var t = tokenizer
        t.truncation = Truncation(maxLength: qa.maxLength, strategy: .onlySecond, stride: qa.docStride)
        var result: [QAFeature] = []
        for (i, ex) in examples.enumerated() {
            var question = ex.question.trimmingCharacters(in: .whitespaces)
            let q = try tokenizer.encode(question, addSpecialTokens: false)
            if q.count > qa.maxQueryLength {
                let cut = q.offsets[qa.maxQueryLength - 1].end
                question = String(String.UnicodeScalarView(Array(question.unicodeScalars)[..<cut]))
            }
            let main: Encoding
            do { main = try t.encode(question, pair: ex.context) } catch {
                throw BertError.invalidInput(
                    "question \(ex.id): \(error) (raise --max-length or lower --max-query-length)")
            }
            for e in [main] + main.overflowing {
                var offsets: [(start: Int, end: Int)?] = []
                for k in 0..<e.count {
                    offsets.append(e.sequenceIds[k] == 1 ? (e.offsets[k].start, e.offsets[k].end) : nil)
                }
                var start = 0, end = 0
                if !ex.isImpossible, let answer = ex.answers.first {
                    let a = answer.start, b = answer.start + answer.text.unicodeScalars.count
                    let inside = offsets.indices.filter { offsets[$0] != nil }
                    if let first = inside.first, let last = inside.last, offsets[first]!.start <= a,
                        offsets[last]!.end >= b
                    {
                        start = inside.last { offsets[$0]!.start <= a } ?? first
                        end = inside.first { offsets[$0]!.end >= b } ?? last
                        if end < start { end = start }
                    }
                }
                result.append(
                    QAFeature(
                        example: i, ids: e.ids, typeIds: e.typeIds, contextOffsets: offsets,
                        startPosition: start, endPosition: end))
            }
        }
        return result
    }

    func batch(_ features: ArraySlice<QAFeature>) -> EncoderBatch {
        EncoderBatch.padded(features.map(\.ids), tokenTypeIds: features.map(\.typeIds))
    }

    /// Trains on the windows of `trainSet` for `options.epochs` epochs, evaluating on `validation`
    /// after each and saving the best epoch by F1; `progress` gets log lines, `report` epoch results.
    public func train(
        _ trainSet: [SquadExample], validation: [SquadExample],
        progress: (String) -> Void = { _ in }, report: (EpochReport) -> Void = { _ in }
    ) throws {
        let features = try self.features(trainSet)
        progress("\(trainSet.count) questions give \(features.count) training windows")
        try runFineTuning(
            parameters: model.parameters, config: model.config, count: features.count, options: options,
            progress: progress, report: report, save: save,
            evaluate: validation.isEmpty
                ? nil
                : {
                    let m = try self.evaluate(validation); return (m["f1"] ?? 0, m)
                },
            exampleCost: { features[$0].ids.count },
            dataIdentity: Fingerprint.of(
                features.map { "\($0.ids) \($0.typeIds) \($0.startPosition) \($0.endPosition)" })
        ) { indices, grads, dropout in
            let part = indices.map { features[$0] }
            return try model.lossAndGradients(
                batch(part[...]), starts: part.map(\.startPosition), ends: part.map(\.endPosition),
                into: grads, dropout: dropout)
        }
    }

    /// Writes the model and its tokenizer and QA settings as one folder (replacing the last save whole).
    public func save() throws { try saveFineTuned(model, tokenizer: tokenizer, to: output, also: qa.write(to:)) }

    /// The best answer of each example: over every window, the n-best start and end logits of
    /// context tokens make spans (end ≥ start, at most maxAnswerLength tokens) scored by start +
    /// end; with `allowNull`, "" when the smallest [CLS] score beats the best span by the threshold.
    public func predict(_ examples: [SquadExample]) throws -> [QAPrediction] {
        let features = try self.features(examples)
        var logits: [WindowLogits] = []
        let b = min(max(1, options.batchSize), 1 << 20)  // bounded: `first + b` cannot overflow
        for first in stride(from: 0, to: features.count, by: b) {
            let part = features[first..<min(features.count, first + b)]
            let batch = batch(part)
            let (startLogits, endLogits) = try model.logits(batch)
            let s = batch.sequenceLength
            for (row, f) in part.enumerated() {
                logits.append(
                    WindowLogits(
                        start: Array(startLogits[row * s..<row * s + f.ids.count]),
                        end: Array(endLogits[row * s..<row * s + f.ids.count])))
            }
        }
        return answers(examples, features: features, logits: logits)
    }

    /// The best answer of each example from its windows' logits (`predict`'s choice, for windows
    /// run elsewhere: a server batches the windows of many requests). `logits[i]` belongs to
    /// `features[i]`, each of its token count.
    public func answers(_ examples: [SquadExample], features: [QAFeature], logits: [WindowLogits]) -> [QAPrediction] {
        var best = examples.map {
            QAPrediction(id: $0.id, text: "", start: 0, end: 0, score: -.infinity, nullScore: .infinity)
        }
        for (f, window) in zip(features, logits) {
            let (st, en) = (window.start, window.end)
            let e = f.example
            best[e].nullScore = min(best[e].nullScore, st[0] + en[0])
            let context = f.contextOffsets.indices.filter { f.contextOffsets[$0] != nil }
            let topStarts = context.sorted { st[$0] > st[$1] }.prefix(qa.nBest)
            let topEnds = context.sorted { en[$0] > en[$1] }.prefix(qa.nBest)
            for i in topStarts {
                for j in topEnds where j >= i && j - i + 1 <= qa.maxAnswerLength {
                    let score = st[i] + en[j]
                    if score > best[e].score {
                        best[e].start = f.contextOffsets[i]!.start
                        best[e].end = f.contextOffsets[j]!.end
                        best[e].score = score
                    }
                }
            }
        }
        // The chosen span's text, once per question.
        for i in best.indices where best[i].score > -.infinity {
            let scalars = Array(examples[i].context.unicodeScalars)
            best[i].text = String(String.UnicodeScalarView(scalars[best[i].start..<best[i].end]))
        }
        if qa.allowNull {
            for i in best.indices
            where best[i].score == -.infinity || Double(best[i].nullScore - best[i].score) > qa.nullThreshold {
                best[i].text = ""
                best[i].start = 0
                best[i].end = 0
            }
        }
        return best
    }

    /// SQuAD exact match and F1 (in percent), overall and split by has-answer / no-answer.
    public func evaluate(_ examples: [SquadExample]) throws -> [String: Double] {
        let predictions = try predict(examples)
        var em = 0.0, f1 = 0.0, hasEM = 0.0, hasF1 = 0.0, noEM = 0.0, has = 0, none = 0
        for (p, ex) in zip(predictions, examples) {
            let gold = ex.isImpossible ? [] : ex.answers.map(\.text)
            let e = SquadMetrics.exactMatch(p.text, gold), f = SquadMetrics.f1(p.text, gold)
            em += e; f1 += f
            if gold.isEmpty { noEM += e; none += 1 } else { hasEM += e; hasF1 += f; has += 1 }
        }
        let n = Double(max(examples.count, 1))
        var result = ["exact_match": 100 * em / n, "f1": 100 * f1 / n, "questions": Double(examples.count)]
        if none > 0 {
            result["has_answer_exact_match"] = 100 * hasEM / Double(max(has, 1))
            result["has_answer_f1"] = 100 * hasF1 / Double(max(has, 1))
            result["no_answer_accuracy"] = 100 * noEM / Double(none)
        }
        return result
    }
}
