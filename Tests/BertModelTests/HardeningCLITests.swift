import Bert
import BertCompute
import BertTokenizer
import Foundation
import Testing

// Bad input as a user gives it, through the `bert` executable: every numeric option at edge
// values, and the classes of failure that once gave a wrong answer, lost work or a crash. Each
// case must end in the right answer or a clear error (exit status 1 or 64, "Error: ..." on
// stderr, no signal), with earlier output intact.

/// A small pretrained model, a classifier and data files, made once with the CLI itself.
final class HardeningFixtures: @unchecked Sendable {
    let root: URL
    let vocab: URL, corpus: URL, labeled: URL, texts: URL, masked: URL, squad: URL
    let pretrained: URL, classifier: URL

    static let shared: Result<HardeningFixtures, Error> = Result { try HardeningFixtures() }

    private init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("hardening-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let folder = root
        func write(_ name: String, _ text: String) throws -> URL {
            let url = folder.appendingPathComponent(name)
            try Data(text.utf8).write(to: url)
            return url
        }
        let text = try String(
            contentsOf: ModelFixtures.packageRoot.appendingPathComponent(".cache/corpus/en.txt"), encoding: .utf8)
        let lines = text.split(separator: "\n").prefix(400).map(String.init)
        // Documents of four lines, blank lines between them.
        var documents: [String] = []
        for start in stride(from: 0, to: lines.count, by: 4) {
            documents.append(lines[start..<min(lines.count, start + 4)].joined(separator: "\n"))
        }
        corpus = try write("corpus.txt", documents.joined(separator: "\n\n") + "\n")
        var learner = WordPieceLearner(size: 600)
        learner.add(text: lines.joined(separator: "\n"))
        let vocabURL = root.appendingPathComponent("vocab.txt")
        try learner.learn().write(to: vocabURL)
        vocab = vocabURL
        var csv = "text,label\n"
        for (i, line) in lines.prefix(40).enumerated() {
            csv += "\"\(line.prefix(80).replacingOccurrences(of: "\"", with: "\"\""))\",\(i % 2)\n"
        }
        labeled = try write("labeled.csv", csv)
        texts = try write("texts.txt", lines.prefix(6).map { String($0.prefix(100)) }.joined(separator: "\n") + "\n")
        masked = try write(
            "masked.txt", lines.prefix(4).map { String($0.prefix(60)) + " [MASK]." }.joined(separator: "\n") + "\n")
        squad = try write(
            "squad.json",
            #"{"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": "The cat sat on the mat near the door of the house.", "qas": [{"id": "q1", "question": "Where did the cat sit?", "answers": [{"text": "on the mat", "answer_start": 12}]}, {"id": "q2", "question": "What sat?", "answers": [{"text": "cat", "answer_start": 4}]}]}]}]}"#
        )
        let pretrainedURL = root.appendingPathComponent("pretrained")
        pretrained = pretrainedURL
        let made = try runBertCLI([
            "pretrain", "--preset", "tiny", "--vocab", vocabURL.path, "--corpus", corpus.path, "--steps", "2",
            "--batch-size", "4", "--seq-len", "32", "--warmup", "0", "--shards", "2", "--out", pretrainedURL.path,
        ])
        guard made.status == 0 else { throw CLIFixtureError(made.stderr) }
        let classifierURL = root.appendingPathComponent("classifier")
        classifier = classifierURL
        let labeledURL = labeled
        let tuned = try runBertCLI([
            "finetune", "--task", "classify", "--model", pretrainedURL.path, "--train", labeledURL.path,
            "--validation", labeledURL.path, "--out", classifierURL.path, "--epochs", "1", "--batch-size", "8",
            "--max-length", "32",
        ])
        guard tuned.status == 0 else { throw CLIFixtureError(tuned.stderr) }
    }

    /// A fresh empty folder for one case's output.
    func scratch() throws -> URL {
        let url = root.appendingPathComponent("out-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

struct CLIFixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A command line and the numeric options swept on it.
struct OptionSweep: Sendable, CustomStringConvertible {
    let command: String
    let options: [String]
    /// The arguments that make a valid run, given the fixtures and an output folder.
    let base: @Sendable (HardeningFixtures, URL) -> [String]
    var description: String { command }
}

@Suite(.enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs the corpus"))
struct HardeningCLITests {
    static let values = ["0", "-1", "1", "2147483648", "9223372036854775807", "nan"]

    static let sweeps: [OptionSweep] = [
        OptionSweep(command: "tokenize", options: ["max-length", "threads"]) { f, _ in
            ["tokenize", "--vocab", f.vocab.path, f.texts.path]
        },
        OptionSweep(command: "vocab", options: ["size", "min-frequency"]) { f, out in
            ["vocab", "--size", "300", "--out", out.appendingPathComponent("v.txt").path, f.corpus.path]
        },
        OptionSweep(command: "embed", options: ["max-length", "batch-size", "threads", "precision", "digits"]) { f, _ in
            ["embed", "--model", f.pretrained.path, f.texts.path]
        },
        OptionSweep(command: "fill-mask", options: ["top-k", "batch-size", "threads"]) { f, _ in
            ["fill-mask", "--model", f.pretrained.path, "--file", f.masked.path]
        },
        OptionSweep(command: "predict", options: ["max-length", "threads"]) { f, _ in
            ["predict", "--model", f.classifier.path, f.texts.path]
        },
        OptionSweep(command: "evaluate", options: ["max-length", "threads"]) { f, _ in
            ["evaluate", "--model", f.classifier.path, "--data", f.labeled.path]
        },
        OptionSweep(command: "features", options: ["max-length", "threads"]) { f, _ in
            ["features", "--model", f.pretrained.path, "--layers", "-1,-2", f.texts.path]
        },
        OptionSweep(
            command: "finetune classify",
            options: ["epochs", "lr", "warmup-ratio", "batch-size", "seed", "threads", "log-every", "max-length"]
        ) { f, out in
            [
                "finetune", "--task", "classify", "--model", f.pretrained.path, "--train", f.labeled.path,
                "--validation", f.labeled.path, "--out", out.appendingPathComponent("m").path, "--epochs", "1",
                "--max-length", "32",
            ]
        },
        OptionSweep(
            command: "finetune qa", options: ["doc-stride", "max-query-length", "max-answer-length", "null-threshold"]
        ) { f, out in
            [
                "finetune", "--task", "qa", "--model", f.pretrained.path, "--train", f.squad.path, "--validation",
                f.squad.path, "--out", out.appendingPathComponent("m").path, "--epochs", "1", "--max-length", "32",
                "--doc-stride", "8",
            ]
        },
        OptionSweep(command: "init", options: ["seed"]) { f, out in
            ["init", "--preset", "tiny", "--vocab", f.vocab.path, "--out", out.appendingPathComponent("m").path]
        },
        OptionSweep(
            command: "prepare-data",
            options: ["seq-len", "short-seq-prob", "dupe-factor", "shards", "seed", "held-out-every", "held-out"]
        ) { f, out in
            [
                "prepare-data", "--corpus", f.corpus.path, "--vocab", f.vocab.path, "--out",
                out.appendingPathComponent("d").path, "--shards", "2",
            ]
        },
        OptionSweep(
            command: "pretrain",
            options: [
                "steps", "batch-size", "accumulate", "shards", "seq-len", "lr", "warmup", "seed", "checkpoint-every",
                "eval-every", "log-every", "dupe-factor", "threads",
            ]
        ) { f, out in
            [
                "pretrain", "--corpus", f.corpus.path, "--vocab", f.vocab.path, "--preset", "tiny", "--out",
                out.appendingPathComponent("p").path, "--steps", "1", "--batch-size", "2", "--seq-len", "32",
                "--shards", "2",
            ]
        },
        OptionSweep(command: "pretrain --learn-vocab", options: ["learn-vocab"]) { f, out in
            [
                "pretrain", "--corpus", f.corpus.path, "--preset", "tiny", "--out",
                out.appendingPathComponent("p").path,
                "--steps", "1", "--batch-size", "2", "--seq-len", "32", "--shards", "2",
            ]
        },
    ]

    /// Each option at 0, -1, 1, 2^31, 2^63-1 and NaN (written `--name value`, the way a user types
    /// it): exit 0, or a clear error; never a signal, a raw system message or a run that hangs.
    @Test(arguments: sweeps)
    func numericOptionsAtEdgeValuesEndInAnAnswerOrAClearError(_ sweep: OptionSweep) throws {
        let f = try HardeningFixtures.shared.get()
        var cases = 0
        for option in sweep.options {
            for value in Self.values {
                let out = try f.scratch()
                defer { try? FileManager.default.removeItem(at: out) }
                var args = sweep.base(f, out)
                // The swept value replaces a value the base already gives.
                if let i = args.firstIndex(of: "--" + option) { args.removeSubrange(i...(i + 1)) }
                args += ["--" + option, value]
                let r = try runBertCLI(args, timeout: 60)
                cases += 1
                let what = "\(sweep.command) --\(option) \(value)"
                #expect(!r.crashed && !r.timedOut, "\(what): \(r.timedOut ? "ran past 60 s" : "crashed")")
                if r.status != 0 {
                    #expect(
                        r.stderr.contains("Error:") && !r.stderr.contains("NSCocoaErrorDomain"),
                        "\(what): exit \(r.status) without a clear message: \(r.stderr.prefix(300))")
                }
                #expect(
                    !r.stderr.contains("Missing value"), "\(what): a negative value read as an option: \(r.stderr)")
            }
        }
        print("option sweep \(sweep.command): \(cases) runs, none crashed")
    }

    @Test func outputsAreNotReplacedWithoutOverwrite() throws {
        let f = try HardeningFixtures.shared.get()
        let out = try f.scratch()
        defer { try? FileManager.default.removeItem(at: out) }
        let model = out.appendingPathComponent("model")
        #expect(try runBertCLI(["init", "--preset", "tiny", "--vocab", f.vocab.path, "--out", model.path]).status == 0)
        let before = snapshot(model)
        let again = try runBertCLI(["init", "--preset", "tiny", "--seed", "9", "--out", model.path])
        #expect(again.status == 1 && again.stderr.contains("--overwrite"), "\(again.stderr)")
        #expect(snapshot(model) == before)
        let replaced = try runBertCLI([
            "init", "--preset", "tiny", "--seed", "9", "--vocab", f.vocab.path, "--out", model.path, "--overwrite",
        ])
        #expect(replaced.status == 0 && snapshot(model) != before, "\(replaced.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path) == ["model"], "no temporary left")
        // A model fine-tuned into its own folder, when the user says so: read first, then replaced whole.
        let own = try runBertCLI([
            "finetune", "--task", "classify", "--model", model.path, "--train", f.labeled.path, "--validation",
            f.labeled.path, "--out", model.path, "--epochs", "1", "--max-length", "32", "--overwrite",
        ])
        #expect(own.status == 0, "\(own.stderr)")
        #expect(
            try BertConfig(contentsOf: model.appendingPathComponent("config.json")).architectures == [
                "BertForSequenceClassification"
            ])
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path) == ["model"], "no temporary left")

        // finetune --out equal to --model leaves the pretrained model as it was.
        let pretrainedBefore = snapshot(f.pretrained).filter { $0.key != ".lock" }
        let same = try runBertCLI([
            "finetune", "--task", "classify", "--model", f.pretrained.path, "--train", f.labeled.path,
            "--validation", f.labeled.path, "--out", f.pretrained.path, "--epochs", "1", "--max-length", "32",
        ])
        #expect(same.status == 1 && same.stderr.contains("pretraining run"), "\(same.stderr)")
        #expect(snapshot(f.pretrained).filter { $0.key != ".lock" } == pretrainedBefore)

        // An --out that is a file: a clear error, not a system error domain.
        let file = out.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: file)
        let onFile = try runBertCLI(["init", "--preset", "tiny", "--out", file.path])
        #expect(onFile.status == 1 && onFile.stderr.contains("is a file"), "\(onFile.stderr)")
        let features = try runBertCLI([
            "features", "--model", f.pretrained.path, "--layers", "-1", "--out", file.path + ".safetensors",
            f.texts.path,
        ])
        #expect(features.status == 0, "\(features.stderr)")
        let featuresAgain = try runBertCLI([
            "features", "--model", f.pretrained.path, "--layers", "-1", "--out", file.path + ".safetensors",
            f.texts.path,
        ])
        #expect(featuresAgain.status == 1 && featuresAgain.stderr.contains("--overwrite"), "\(featuresAgain.stderr)")
        let vocabAgain = try runBertCLI(["vocab", "--size", "300", "--out", f.vocab.path, f.corpus.path])
        #expect(vocabAgain.status == 1 && vocabAgain.stderr.contains("--overwrite"), "\(vocabAgain.stderr)")
    }

    @Test func pretrainRefusesToDiscardOrMixRuns() throws {
        let f = try HardeningFixtures.shared.get()
        let out = try f.scratch()
        defer { try? FileManager.default.removeItem(at: out) }
        let run = out.appendingPathComponent("run")
        let args = [
            "pretrain", "--corpus", f.corpus.path, "--vocab", f.vocab.path, "--preset", "tiny", "--out", run.path,
            "--steps", "2", "--batch-size", "2", "--seq-len", "32", "--shards", "2", "--checkpoint-every", "1",
        ]
        let first = try runBertCLI(args)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("held out"), "the held-out count is printed: \(first.stderr)")
        // The lock file names the last process that held the run; everything else must stay.
        func state() -> [String: Data] { snapshot(run).filter { $0.key != ".lock" } }
        let before = state()
        // Again without --resume: refused, the checkpoints kept.
        let again = try runBertCLI(args)
        #expect(again.status == 1 && again.stderr.contains("--resume") && again.stderr.contains("--overwrite"))
        #expect(state() == before)
        // Resumed with another --seq-len: the old shards would be trained on; refused, naming it.
        var changed = args
        changed[changed.firstIndex(of: "--seq-len")! + 1] = "24"
        let other = try runBertCLI(changed + ["--resume"])
        #expect(other.status == 1 && other.stderr.contains("seq_len"), "\(other.stderr)")
        // Another corpus: refused too.
        let otherCorpus = out.appendingPathComponent("other.txt")
        try Data((try String(contentsOf: f.corpus, encoding: .utf8) + "\nmore text here.\n").utf8).write(
            to: otherCorpus)
        var moved = args
        moved[moved.firstIndex(of: "--corpus")! + 1] = otherCorpus.path
        let otherRun = try runBertCLI(moved + ["--resume"])
        #expect(otherRun.status == 1 && otherRun.stderr.contains("corpus"), "\(otherRun.stderr)")
        #expect(state() == before)
        // While another process holds the run, a second one is refused at once, naming it.
        do {
            let lock = try FolderLock(run, command: "a test holding the run")
            let second = try runBertCLI(args + ["--resume"])
            #expect(second.status == 1 && second.stderr.contains("a test holding the run"), "\(second.stderr)")
            withExtendedLifetime(lock) {}
        }
        // --overwrite with a typo in an input: refused before the old run is removed.
        let typo = try runBertCLI(args + ["--overwrite", "--corpus", out.appendingPathComponent("nope.txt").path])
        #expect(typo.status == 1 && typo.stderr.contains("not found"), "\(typo.stderr)")
        #expect(state() == before)
        // --overwrite of a folder that holds an input: refused.
        let inside = run.appendingPathComponent("corpus.txt")
        try FileManager.default.copyItem(at: f.corpus, to: inside)
        var holding = args
        holding[holding.firstIndex(of: "--corpus")! + 1] = inside.path
        let held = try runBertCLI(holding + ["--overwrite"])
        #expect(held.status == 1 && held.stderr.contains("holds the input"), "\(held.stderr)")
        try FileManager.default.removeItem(at: inside)
        // --overwrite starts again.
        let fresh = try runBertCLI(args + ["--overwrite"])
        #expect(fresh.status == 0, "\(fresh.stderr)")
        #expect(fresh.stdout.contains("step 2/2"), "\(fresh.stdout)")
    }

    @Test func aHeldOutShareIsBoundedWhateverTheDocumentCount() throws {
        let f = try HardeningFixtures.shared.get()
        let out = try f.scratch()
        defer { try? FileManager.default.removeItem(at: out) }
        // Two long documents (two "novels"): before, one was held out whole.
        let lines = try String(contentsOf: f.corpus, encoding: .utf8).split(separator: "\n").filter { !$0.isEmpty }
        let half = lines.count / 2
        let two = out.appendingPathComponent("two.txt")
        try Data((lines[..<half].joined(separator: "\n") + "\n\n" + lines[half...].joined(separator: "\n") + "\n").utf8)
            .write(to: two)
        let r = try runBertCLI([
            "prepare-data", "--corpus", two.path, "--vocab", f.vocab.path, "--out",
            out.appendingPathComponent("d").path,
            "--shards", "2", "--seq-len", "32",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let set = try PretrainingShardSet(folder: out.appendingPathComponent("d"))
        #expect(set.heldOutCount > 0 && set.heldOutCount * 10 <= set.count + set.heldOutCount, "\(set.heldOutCount)")
        #expect(r.stderr.contains("\(set.heldOutCount) held out"), "\(r.stderr)")
    }

    @Test func inputsThatOnceGaveWrongAnswersAreErrorsOrRight() throws {
        let f = try HardeningFixtures.shared.get()
        let out = try f.scratch()
        defer { try? FileManager.default.removeItem(at: out) }
        // --pair with no tab.
        let noTab = try runBertCLI(
            ["predict", "--model", f.classifier.path, "--pair"], stdin: Data("no tab here\n".utf8))
        #expect(noTab.status == 1 && noTab.stderr.contains("tab"), "\(noTab.stderr)")
        // A limit below the special tokens.
        let short = try runBertCLI(
            ["tokenize", "--vocab", f.vocab.path, "--max-length", "1"], stdin: Data("a b\n".utf8))
        #expect(short.status == 1 && short.stderr.contains("special tokens"), "\(short.stderr)")
        // Masks past the model's positions (the tiny preset has 512).
        let many = try runBertCLI(
            ["fill-mask", "--model", f.pretrained.path, String(repeating: "[MASK] ", count: 600)])
        #expect(many.status == 1 && many.stderr.contains("past"), "\(many.stderr.prefix(300))")
        // Negative values after their option's name.
        let topK = try runBertCLI(["fill-mask", "--model", f.pretrained.path, "--top-k", "-1", "a [MASK]"])
        #expect(topK.status == 64 && topK.stderr.contains("--top-k must be at least 1"), "\(topK.stderr)")
        let layers = try runBertCLI(
            ["features", "--model", f.pretrained.path, "--layers", "-1,-2"], stdin: Data("a\n".utf8))
        #expect(layers.status == 0 && layers.stdout.contains("\"features\""), "\(layers.stderr)")
        // Threads far past the cores.
        let threads = try runBertCLI(
            ["embed", "--model", f.pretrained.path, "--threads", "65536"], stdin: Data("a\n".utf8))
        #expect(threads.status == 64 && threads.stderr.contains("four per core"), "\(threads.stderr)")

        // NaN weights: an error naming the tensor, not "[nan, ...]" with exit 0.
        let broken = out.appendingPathComponent("nan-model")
        try FileManager.default.copyItem(at: f.pretrained, to: broken)
        let weights = try SafeTensorsFile(contentsOf: broken.appendingPathComponent("model.safetensors"))
        var writer = SafeTensorsWriter()
        for t in weights.tensors {
            var values = [Float](repeating: 0, count: t.shape.reduce(1, *))
            try values.withUnsafeMutableBufferPointer { try weights.copyFloats(t.name, into: $0) }
            if t.name.hasSuffix("encoder.layer.0.output.dense.weight") { values[3] = .nan }
            values.withUnsafeBufferPointer { writer.add(t.name, shape: t.shape, floats: $0) }
        }
        try writer.write(to: broken.appendingPathComponent("model.safetensors"))
        let nan = try runBertCLI(["embed", "--model", broken.path], stdin: Data("a cat\n".utf8))
        #expect(
            nan.status == 1 && nan.stdout.isEmpty && nan.stderr.contains("encoder.layer.0.output.dense.weight")
                && nan.stderr.contains("not a finite number"), "\(nan.stderr)")

        // A sentence-transformers module that is not applied: refused, named.
        let dense = out.appendingPathComponent("dense-model")
        try FileManager.default.copyItem(at: f.pretrained, to: dense)
        try Data(
            #"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},{"idx":2,"name":"2","path":"2_Dense","type":"sentence_transformers.models.Dense"}]"#
                .utf8
        ).write(to: dense.appendingPathComponent("modules.json"))
        try FileManager.default.createDirectory(
            at: dense.appendingPathComponent("1_Pooling"), withIntermediateDirectories: true)
        try Data(#"{"word_embedding_dimension": 128, "pooling_mode_mean_tokens": true}"#.utf8)
            .write(to: dense.appendingPathComponent("1_Pooling/config.json"))
        let denseRun = try runBertCLI(["embed", "--model", dense.path], stdin: Data("a cat\n".utf8))
        #expect(denseRun.status == 1 && denseRun.stderr.contains("models.Dense"), "\(denseRun.stderr)")
        // A pooling config for another width: refused.
        try Data(
            #"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#
                .utf8
        ).write(to: dense.appendingPathComponent("modules.json"))
        try Data(#"{"word_embedding_dimension": 384, "pooling_mode_mean_tokens": true}"#.utf8)
            .write(to: dense.appendingPathComponent("1_Pooling/config.json"))
        let width = try runBertCLI(["embed", "--model", dense.path], stdin: Data("a cat\n".utf8))
        #expect(width.status == 1 && width.stderr.contains("word_embedding_dimension 384"), "\(width.stderr)")

        // Regression on constant labels: the folder is written (the first epoch), and said so.
        let constant = out.appendingPathComponent("constant.csv")
        try Data("text,label\nthe cat,1.5\na dog,1.5\nit ran,1.5\n".utf8).write(to: constant)
        let regress = try runBertCLI([
            "finetune", "--task", "regress", "--model", f.pretrained.path, "--train", constant.path, "--validation",
            constant.path, "--out", out.appendingPathComponent("r").path, "--epochs", "2", "--max-length", "16",
        ])
        #expect(regress.status == 0 && regress.stderr.contains("wrote"), "\(regress.stderr)")
        #expect(
            FileManager.default.fileExists(atPath: out.appendingPathComponent("r/model.safetensors").path))

        // A vocabulary line of 10 MB in 1 GB of address space (it took 1.6 GB in the trie).
        let bigVocab = out.appendingPathComponent("big-vocab.txt")
        try (try Data(contentsOf: f.vocab) + Data(repeating: UInt8(ascii: "x"), count: 10_000_000) + Data([0x0A]))
            .write(to: bigVocab)
        let big = try runShell(
            "ulimit -v 1000000 && echo 'the cat' | '\(bertExecutable().path)' tokenize --vocab '\(bigVocab.path)'")
        #expect(big.status == 0 && big.stdout.hasPrefix("2 "), "\(big.stderr.prefix(300))")

        // More shards than the process may open: refused before any file is made.
        let shards = try runShell(
            "ulimit -n 64 && '\(bertExecutable().path)' prepare-data --corpus '\(f.corpus.path)' --vocab "
                + "'\(f.vocab.path)' --out '\(out.appendingPathComponent("many").path)' --shards 200")
        #expect(shards.status == 1 && shards.stderr.contains("open files"), "\(shards.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("many").path))
    }
}

extension HardeningCLITests {
    /// What a hostile probe of the CLI found after the first round of fixes.
    @Test func inputsAreNeverOutputsAndEndlessLinesAreRefused() throws {
        let f = try HardeningFixtures.shared.get()
        let out = try f.scratch()
        defer { try? FileManager.default.removeItem(at: out) }
        // No newline in gigabytes: an error, not an abort in the allocator.
        let zero = try runBertCLI(["tokenize", "--vocab", f.vocab.path, "/dev/zero"], timeout: 60)
        #expect(zero.status == 1 && zero.stderr.contains("longer than 64 MB"), "\(zero.stderr.prefix(300))")
        // A BOM at the start of an input file is not text: offsets count from "ab".
        let bom = out.appendingPathComponent("bom.txt")
        try Data([0xEF, 0xBB, 0xBF] + Array("ab\r\n".utf8)).write(to: bom)
        let json = try runBertCLI(["tokenize", "--vocab", f.vocab.path, "--format", "json", bom.path])
        #expect(json.status == 0 && json.stdout.contains("\"offsets\":[[0,0],[0,"), "\(json.stdout)")
        // --out holding the training data, or a model's own weights: refused even with --overwrite.
        let holder = out.appendingPathComponent("holder")
        try FileManager.default.createDirectory(at: holder, withIntermediateDirectories: true)
        let train = holder.appendingPathComponent("train.csv")
        try FileManager.default.copyItem(at: f.labeled, to: train)
        let tune = try runBertCLI([
            "finetune", "--task", "classify", "--model", f.classifier.path, "--train", train.path, "--validation",
            train.path, "--out", holder.path, "--epochs", "1", "--max-length", "32", "--overwrite",
        ])
        #expect(tune.status == 1 && tune.stderr.contains("holds the input"), "\(tune.stderr)")
        #expect(FileManager.default.fileExists(atPath: train.path))
        let weights = f.classifier.appendingPathComponent("model.safetensors")
        let before = try Data(contentsOf: weights)
        let features = try runBertCLI(
            ["features", "--model", f.classifier.path, "--layers", "-1", "--out", weights.path, "--overwrite"],
            stdin: Data("a\n".utf8))
        #expect(features.status == 1 && features.stderr.contains("input"), "\(features.stderr)")
        #expect(try Data(contentsOf: weights) == before)
        // Shards prepared cased, trained uncased: refused, naming the normalizer.
        let shards = out.appendingPathComponent("cased")
        #expect(
            try runBertCLI([
                "prepare-data", "--corpus", f.corpus.path, "--vocab", f.vocab.path, "--out", shards.path, "--shards",
                "2", "--seq-len", "32", "--cased",
            ]).status == 0)
        let mixed = try runBertCLI([
            "pretrain", "--data", shards.path, "--preset", "tiny", "--steps", "1", "--batch-size", "2", "--seq-len",
            "32", "--out", out.appendingPathComponent("mixed").path,
        ])
        #expect(mixed.status == 1 && mixed.stderr.contains("lowercase false"), "\(mixed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("mixed").path), "nothing left")
        // Empty data has no metrics.
        let empty = out.appendingPathComponent("empty.csv")
        try Data("text,label\n".utf8).write(to: empty)
        let none = try runBertCLI(["evaluate", "--model", f.classifier.path, "--data", empty.path])
        #expect(none.status == 1 && none.stderr.contains("no examples"), "\(none.stderr)")
    }
}

/// Runs a shell command line (for limits a child must inherit, as `ulimit`).
func runShell(_ line: String) throws -> BertCLIResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", line]
    let outPipe = Pipe(), errPipe = Pipe()
    p.standardOutput = outPipe
    p.standardError = errPipe
    try p.run()
    let out = outPipe.fileHandleForReading.readDataToEndOfFile()
    let err = errPipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return BertCLIResult(
        status: p.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
        stderr: String(decoding: err, as: UTF8.self), crashed: p.terminationReason == .uncaughtSignal)
}
