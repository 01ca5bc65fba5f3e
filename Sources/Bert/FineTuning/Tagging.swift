import BertCompute
import BertTokenizer
import Foundation

/// A sentence of words with their tags (BIO), from a CoNLL-style file.
public struct TaggedSentence: Sendable, Equatable {
    /// The sentence's words (the file's first column).
    public var words: [String]
    /// One tag per word (the file's last column), e.g. "B-PER".
    public var tags: [String]
    /// Where the sentence starts ("file:line"), named in errors; empty when unknown.
    public var source: String
    /// A sentence from its words and tags; without a source by default.
    public init(words: [String], tags: [String], source: String = "") {
        self.words = words
        self.tags = tags
        self.source = source
    }
}

/// Reads a CoNLL-style file: one token per line, its tag in the last column (tab- or
/// space-separated), blank lines between sentences; `-DOCSTART-` lines are skipped. A line with
/// a single column is an error naming the file and line.
public func readTaggedSentences(_ url: URL) throws -> [TaggedSentence] {
    var sentences: [TaggedSentence] = []
    var words: [String] = [], tags: [String] = [], start = 1
    for (number, raw) in try readTextLines(url) {
        let i = number - 1
        let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if line.isEmpty || line.hasPrefix("-DOCSTART-") {
            if !words.isEmpty {
                sentences.append(TaggedSentence(words: words, tags: tags, source: "\(url.path):\(start)"))
            }
            words = []; tags = []
            continue
        }
        let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
        guard fields.count >= 2 else {
            throw BertError.malformedFile(
                path: "\(url.path):\(i + 1)", reason: "expected 'token<TAB>tag', got '\(line)'")
        }
        if words.isEmpty { start = i + 1 }
        words.append(String(fields[0]))
        tags.append(String(fields[fields.count - 1]))
    }
    if !words.isEmpty { sentences.append(TaggedSentence(words: words, tags: tags, source: "\(url.path):\(start)")) }
    return sentences
}

/// An entity: its type and the half-open range of words (or tokens) it covers.
public struct Entity: Sendable, Hashable {
    /// The entity type: the tag without its prefix ("PER" of "B-PER").
    public var type: String
    /// Index of the entity's first word (or token).
    public var start: Int
    /// Index just past the entity's last word (or token).
    public var end: Int
}

/// Entities of a tag sequence by the CoNLL evaluation rules (as seqeval's default mode): a chunk
/// starts at B-, S-, or an I-/E- whose type differs from the previous tag's or follows O; it ends
/// before O, B-, S-, after E-/S-, or where the type changes.
public func entities(_ tags: [String]) -> [Entity] {
    func split(_ t: String) -> (String, String) {
        if t == "O" || t.isEmpty { return ("O", "") }
        if let dash = t.firstIndex(where: { $0 == "-" || $0 == "_" }), t.distance(from: t.startIndex, to: dash) == 1 {
            return (String(t[t.startIndex]), String(t[t.index(after: dash)...]))
        }
        return ("I", t)
    }
    var result: [Entity] = []
    var prevPrefix = "O", prevType = "", begin = -1
    for (i, tag) in (tags + ["O"]).enumerated() {
        let (prefix, type) = split(tag)
        let ends =
            (prevPrefix == "E" || prevPrefix == "S") || (prevPrefix == "B" && ["B", "S", "O"].contains(prefix))
            || (prevPrefix == "I" && ["B", "S", "O"].contains(prefix)) || (prevPrefix != "O" && prevType != type)
        if ends && begin >= 0 {
            result.append(Entity(type: prevType, start: begin, end: i))
            begin = -1
        }
        let starts =
            prefix == "B" || prefix == "S" || (prevPrefix == "E" && (prefix == "E" || prefix == "I"))
            || (prevPrefix == "S" && (prefix == "E" || prefix == "I"))
            || (prevPrefix == "O" && (prefix == "E" || prefix == "I")) || (prefix != "O" && prevType != type)
        if starts && prefix != "O" { begin = i }
        prevPrefix = prefix
        prevType = type
    }
    return result
}

extension Metrics {
    /// Entity-level precision, recall and F1 (micro over all entities, as seqeval).
    public static func entityScores(predicted: [[String]], gold: [[String]]) -> (
        precision: Double, recall: Double, f1: Double
    ) {
        var correct = 0, nPredicted = 0, nGold = 0
        for (p, g) in zip(predicted, gold) {
            let pe = Set(entities(p)), ge = Set(entities(g))
            correct += pe.intersection(ge).count
            nPredicted += pe.count
            nGold += ge.count
        }
        let precision = nPredicted == 0 ? 0 : Double(correct) / Double(nPredicted)
        let recall = nGold == 0 ? 0 : Double(correct) / Double(nGold)
        return (precision, recall, precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall))
    }
}

/// The tags of a data set in a fixed order: "O" first, then sorted.
public func tagNames(of sentences: [TaggedSentence]) -> [String] {
    let all = Set(sentences.flatMap(\.tags))
    return (all.contains("O") ? ["O"] : []) + all.subtracting(["O"]).sorted()
}

/// Fine-tunes and runs a BertForTokenClassification on words: each word's WordPieces get its tag
/// on the first piece only (the others are ignored by the loss), predictions are read there.
public final class TokenTagger {
    /// The token classification model trained and run.
    public let model: BertForTokenClassification
    /// The tokenizer, truncating to `options.maxLength` and not padding.
    public let tokenizer: BertTokenizer
    /// The training settings; `maxLength` limits a sentence's tokens, `batchSize` counts sentences.
    public let options: FineTuneOptions
    /// Where `save` writes (nil: a model opened for prediction only).
    public let output: OutputFolder?

    /// A tagger for `model` that splits words into pieces with `tokenizer` and saves to `output`.
    public init(
        model: BertForTokenClassification, tokenizer: BertTokenizer, options: FineTuneOptions,
        output: OutputFolder? = nil
    ) {
        self.model = model
        var t = tokenizer
        t.truncation = Truncation(maxLength: options.maxLength)
        t.padding = nil
        self.tokenizer = t
        self.options = options
        self.output = output
    }

    /// A padded batch of word sequences: ids, the first-piece position of every word (nil when
    /// the word has no pieces or falls past max length) and, with tags, the labels.
    public func encode(_ sentences: [[String]], tags: [[String]]?) throws -> (EncoderBatch, [[Int?]], [Int32]) {
        guard let cls = tokenizer.tokenId("[CLS]"), let sep = tokenizer.tokenId("[SEP]") else {
            throw BertError.invalidInput("the vocabulary needs [CLS] and [SEP]")
        }
        let index = Dictionary(uniqueKeysWithValues: model.labels.enumerated().map { ($0.element, Int32($0.offset)) })
        var rows: [[Int32]] = [], firsts: [[Int?]] = [], rowLabels: [[Int32]] = []
        let limit = max(2, options.maxLength) - 2
        for (s, words) in sentences.enumerated() {
            var ids: [Int32] = [cls], labels: [Int32] = [-100], first: [Int?] = []
            for (w, word) in words.enumerated() {
                let pieces = tokenizer.encodeIds(word, addSpecialTokens: false)
                if pieces.isEmpty || ids.count - 1 + pieces.count > limit { first.append(nil); continue }
                first.append(ids.count)
                ids += pieces
                var label: Int32 = -100
                if let tags {
                    guard let id = index[tags[s][w]] else {
                        throw BertError.invalidInput(
                            "tag '\(tags[s][w])' is not one of the model's tags \(model.labels)")
                    }
                    label = id
                }
                labels.append(label)
                labels += [Int32](repeating: -100, count: pieces.count - 1)
            }
            ids.append(sep)
            labels.append(-100)
            rows.append(ids); firsts.append(first); rowLabels.append(labels)
        }
        let batch = EncoderBatch.padded(rows)
        return (batch, firsts, EncoderBatch.padRows(rowLabels, width: batch.sequenceLength, fill: -100))
    }

    /// Trains for `options.epochs` epochs (every tag must be one of the model's), evaluating on
    /// `validation` after each and saving the best epoch by entity F1; `progress` gets log lines,
    /// `report` epoch results.
    public func train(
        _ trainSet: [TaggedSentence], validation: [TaggedSentence],
        progress: (String) -> Void = { _ in }, report: (EpochReport) -> Void = { _ in }
    ) throws {
        for s in trainSet + validation {
            for t in s.tags where !model.labels.contains(t) {
                throw BertError.malformedFile(path: s.source, reason: "tag '\(t)' is not one of \(model.labels)")
            }
        }
        try runFineTuning(
            parameters: model.parameters, config: model.config, count: trainSet.count, options: options,
            progress: progress, report: report, save: save,
            evaluate: validation.isEmpty
                ? nil
                : {
                    let m = try self.evaluate(validation); return (m["f1"] ?? 0, m)
                },
            // The loss is a mean over the labelled tokens (a word's first piece, within max length).
            lossTerms: { indices in
                let part = indices.map { trainSet[$0] }
                return try self.encode(part.map(\.words), tags: part.map(\.tags)).2.count { $0 != -100 }
            },
            exampleCost: { trainSet[$0].words.reduce(0) { $0 + $1.utf8.count + 1 } },
            dataIdentity: Fingerprint.of(trainSet.flatMap { $0.words + $0.tags })
        ) { indices, grads, dropout in
            let part = indices.map { trainSet[$0] }
            let (batch, _, labels) = try encode(part.map(\.words), tags: part.map(\.tags))
            return try model.lossAndGradients(batch, labels: labels, into: grads, dropout: dropout)
        }
    }

    /// Writes the model and its tokenizer as one folder (replacing the last save whole).
    public func save() throws { try saveFineTuned(model, tokenizer: tokenizer, to: output) }

    /// The predicted tag of every word ("O" for a word cut off by max length or without pieces).
    public func predict(_ sentences: [[String]]) throws -> [[String]] {
        var result: [[String]] = []
        // b bounded: `first + b` must not overflow.
        let b = min(max(1, options.batchSize), 1 << 20), n = model.numLabels
        for first in stride(from: 0, to: sentences.count, by: b) {
            let part = Array(sentences[first..<min(sentences.count, first + b)])
            let (batch, positions, _) = try encode(part, tags: nil)
            let logits = try model.logits(batch)
            for (row, words) in positions.enumerated() {
                result.append(
                    words.map { position in
                        guard let position else { return "O" }
                        let base = (row * batch.sequenceLength + position) * n
                        let best = (0..<n).max { logits[base + $0] < logits[base + $1] }!
                        return model.labels[best]
                    })
            }
        }
        return result
    }

    /// Entity precision, recall and F1 (seqeval rules) and word accuracy.
    public func evaluate(_ sentences: [TaggedSentence]) throws -> [String: Double] {
        let predicted = try predict(sentences.map(\.words))
        let gold = sentences.map(\.tags)
        let scores = Metrics.entityScores(predicted: predicted, gold: gold)
        let words = gold.reduce(0) { $0 + $1.count }
        let right = zip(predicted, gold).reduce(0) { $0 + zip($1.0, $1.1).filter { $0 == $1 }.count }
        return [
            "precision": scores.precision, "recall": scores.recall, "f1": scores.f1,
            "accuracy": Double(right) / Double(max(words, 1)), "sentences": Double(sentences.count),
        ]
    }

    /// Tags a raw text: its words as the tokenizer splits them (whitespace and punctuation), each
    /// with its tag and character span in the original text (the tokenizer's offset unit), and
    /// the entities those tags make.
    public func tag(_ text: String) throws -> TaggedText {
        let input = try taggingInput(text)
        let logits = try model.logits(EncoderBatch.padded([input.ids]))
        return tagged(input, logits: logits[...])
    }

    /// A raw text made ready for the model: its words (as the tokenizer splits them) with their
    /// spans in the text, and the one input row `tag` runs. A server builds these off the compute
    /// thread, batches the rows of many requests, and reads each with `tagged(_:logits:)`.
    public func taggingInput(_ text: String) throws -> TaggingInput {
        var t = tokenizer
        t.truncation = nil
        let e = try t.encode(text, addSpecialTokens: false)
        var spans: [TaggingInput.Span] = []
        for (i, w) in e.wordIds.enumerated() where w >= 0 {
            if Int(w) == spans.count {
                spans.append(.init(start: e.offsets[i].start, end: e.offsets[i].end))
            } else if Int(w) == spans.count - 1 {
                spans[spans.count - 1].end = e.offsets[i].end
            }
        }
        let input = TaggingInput(text: text, unit: tokenizer.offsetUnit, spans: spans, ids: [], firstPieces: [])
        let words = spans.map { input.slice($0.start, $0.end) }
        let (batch, firsts, _) = try encode([words], tags: nil)
        return TaggingInput(
            text: text, unit: tokenizer.offsetUnit, spans: spans, ids: batch.inputIds, firstPieces: firsts[0])
    }

    /// The tags and entities of `input` from its row's logits ([tokens, tags], row-major; the
    /// first `input.ids.count` rows of a padded batch's row are enough).
    public func tagged(_ input: TaggingInput, logits: ArraySlice<Float>) -> TaggedText {
        let n = model.numLabels, base = logits.startIndex
        let tags = input.firstPieces.map { position -> String in
            guard let position else { return "O" }  // cut off by max length, or no pieces
            let row = base + position * n
            let best = (0..<n).max { logits[row + $0] < logits[row + $1] }!
            return model.labels[best]
        }
        let words = zip(input.spans, tags).map { span, tag in
            TaggedWord(word: input.slice(span.start, span.end), tag: tag, start: span.start, end: span.end)
        }
        let found = entities(tags).map { en in
            let (start, end) = (input.spans[en.start].start, input.spans[en.end - 1].end)
            return TextEntity(type: en.type, text: input.slice(start, end), start: start, end: end)
        }
        return TaggedText(words: words, entities: found)
    }
}

/// A raw text made ready for tagging (see `TokenTagger.taggingInput(_:)`).
public struct TaggingInput: Sendable {
    /// A word's span in the text, in the tokenizer's offset unit; `end` is exclusive.
    public struct Span: Sendable, Equatable {
        /// The word's first offset.
        public var start: Int
        /// The offset past the word's end.
        public var end: Int
    }
    /// The text tagged.
    public let text: String
    /// What the spans count: UTF-8 bytes or Unicode scalars.
    public let unit: OffsetUnit
    /// Each word's span in the text.
    public let spans: [Span]
    /// The model's input row: [CLS], each word's pieces, [SEP].
    public let ids: [Int32]
    /// The row position of each word's first piece (nil: cut off by max length, or no pieces).
    public let firstPieces: [Int?]

    /// The text between two offsets.
    func slice(_ start: Int, _ end: Int) -> String {
        switch unit {
        case .utf8: return String(decoding: Array(text.utf8)[start..<end], as: UTF8.self)
        case .unicodeScalars:
            return String(String.UnicodeScalarView(Array(text.unicodeScalars)[start..<end]))
        }
    }
}

/// A word of a tagged text, with its tag and its span in the text.
public struct TaggedWord: Sendable, Equatable {
    /// The word as it appears in the text.
    public var word: String
    /// Its predicted tag ("O" outside entities).
    public var tag: String
    /// Where it starts in the text, in the tokenizer's offset unit.
    public var start: Int
    /// Where it ends in the text (exclusive).
    public var end: Int
}

/// An entity found in a tagged text: its type, its text and its span.
public struct TextEntity: Sendable, Equatable {
    /// The entity type (the tag without its B-/I- prefix).
    public var type: String
    /// The entity as it appears in the text.
    public var text: String
    /// Where it starts in the text, in the tokenizer's offset unit.
    public var start: Int
    /// Where it ends in the text (exclusive).
    public var end: Int
}

/// A raw text's tagged words and the entities their tags make (`TokenTagger.tag(_:)`).
public struct TaggedText: Sendable, Equatable {
    /// Every word of the text, in order.
    public var words: [TaggedWord]
    /// The entities, in order.
    public var entities: [TextEntity]
}
