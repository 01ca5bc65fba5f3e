import Bert
import Foundation
import Testing

/// `bert finetune`, `bert predict` and `bert evaluate` end to end on all-MiniLM-L6-v2 with a few
/// examples (a smoke test of the commands; the real runs are in the README), and their errors.
@Suite(.serialized, .enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs all-MiniLM-L6-v2"))
struct FineTuneCLITests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("finetune-cli-\(UUID().uuidString)")
    var miniLM: String { ModelFixtures.miniLMFolder.path }

    func file(_ name: String, _ text: String) throws -> String {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let url = root.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test func classifyPredictEvaluate() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        var rows = "text,label\n"
        for i in 0..<12 {
            rows +=
                i % 2 == 0 ? "\"A wonderful, moving film number \(i).\",good\n" : "Dull and tedious picture \(i),bad\n"
        }
        let train = try file("train.csv", rows)
        let out = root.appendingPathComponent("model").path
        let r = try runBertCLI([
            "finetune", "--task", "classify", "--model", miniLM, "--train", train, "--validation", train,
            "--out", out, "--epochs", "1", "--batch-size", "4", "--max-length", "32", "--lr", "1e-4",
            "--log-every", "1",
        ])
        #expect(r.status == 0 && !r.crashed, "\(r.stderr)")
        #expect(r.stdout.contains("epoch 1") && r.stdout.contains("accuracy"))
        #expect(["step 1/3", "step 2/3", "step 3/3"].allSatisfy { r.stdout.contains($0) }, "\(r.stdout)")
        for f in ["config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "eval_history.json"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + f), "\(f)")
        }
        let p = try runBertCLI(["predict", "--model", out], stdin: Data("A wonderful film\nDull and tedious\n".utf8))
        #expect(p.status == 0, "\(p.stderr)")
        let lines = p.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(["bad", "good"].contains(object["label"] as? String ?? ""))
            let probabilities = try #require(object["probabilities"] as? [String: Double])
            #expect(abs(probabilities.values.reduce(0, +) - 1) < 1e-6)
        }
        let e = try runBertCLI(["evaluate", "--model", out, "--data", train])
        #expect(e.status == 0, "\(e.stderr)")
        let metrics = try #require(try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Double])
        #expect(metrics["examples"] == 12 && (0...1).contains(metrics["accuracy"] ?? -1) && metrics["matthews"] != nil)
        // In bf16 and int8: the probabilities move a little, never far.
        func probabilities(_ stdout: String) throws -> [[String: Double]] {
            try stdout.split(separator: "\n").map {
                let object = try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                return try #require(object?["probabilities"] as? [String: Double])
            }
        }
        let reference = try probabilities(p.stdout)
        for precision in ["bf16", "int8"] {
            let low = try runBertCLI(
                ["predict", "--model", out, "--precision", precision],
                stdin: Data("A wonderful film\nDull and tedious\n".utf8))
            #expect(low.status == 0, "\(low.stderr)")
            let moved = try probabilities(low.stdout)
            try #require(moved.count == reference.count)
            let change = zip(reference, moved).flatMap { r, m in r.keys.map { abs(r[$0]! - (m[$0] ?? 9)) } }.max()!
            #expect(change < 0.03 && low.stdout != p.stdout, "\(precision): \(low.stdout) against \(p.stdout)")
            let evaluated = try runBertCLI(["evaluate", "--model", out, "--data", train, "--precision", precision])
            #expect(evaluated.status == 0 && evaluated.stdout.contains("\"examples\""), "\(evaluated.stderr)")
        }
    }

    @Test func tagPredictEvaluate() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        var conll = ""
        for i in 0..<8 { conll += "John\tB-person\nSmith\tI-person\nvisited\tO\nParis\tB-geo-loc\nday\tO\n\(i)\tO\n\n" }
        let train = try file("train.txt", conll)
        let out = root.appendingPathComponent("tagger").path
        let r = try runBertCLI([
            "finetune", "--task", "tag", "--model", miniLM, "--train", train, "--validation", train,
            "--out", out, "--epochs", "2", "--batch-size", "4", "--lr", "1e-3",
        ])
        #expect(r.status == 0 && !r.crashed, "\(r.stderr)")
        #expect(r.stdout.contains("f1"))
        let p = try runBertCLI(["predict", "--model", out], stdin: Data("John Smith visited Paris!\n".utf8))
        #expect(p.status == 0, "\(p.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(p.stdout.utf8)) as? [String: Any])
        let words = try #require(object["words"] as? [[String: Any]])
        #expect(words.map { $0["word"] as? String } == ["John", "Smith", "visited", "Paris", "!"])
        #expect(words.map { $0["start"] as? Int } == [0, 5, 11, 19, 24])
        #expect(object["entities"] is [[String: Any]])
        let e = try runBertCLI(["evaluate", "--model", out, "--data", train])
        #expect(e.status == 0, "\(e.stderr)")
        let metrics = try #require(try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Double])
        #expect(metrics["sentences"] == 8 && metrics["f1"] != nil)
    }

    @Test func qaPredictEvaluate() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let context = "The Eiffel Tower was finished in 1889. It stands in Paris, on the Champ de Mars."
        func at(_ s: String) -> Int {
            context.unicodeScalars.count
                - (context.range(of: s).map { context[$0.lowerBound...].unicodeScalars.count } ?? 0)
        }
        let qas: [[String: Any]] = [
            [
                "id": "a", "question": "When was the tower finished?",
                "answers": [["text": "1889", "answer_start": at("1889")]],
            ],
            [
                "id": "b", "question": "Where does it stand?",
                "answers": [["text": "Paris", "answer_start": at("Paris")]],
            ],
            ["id": "c", "question": "Who painted it?", "answers": [], "is_impossible": true],
        ]
        let squad = try file(
            "squad.json",
            String(
                decoding: try JSONSerialization.data(withJSONObject: [
                    "data": [["paragraphs": [["context": context, "qas": qas]]]]
                ]), as: UTF8.self))
        let out = root.appendingPathComponent("qa").path
        let r = try runBertCLI([
            "finetune", "--task", "qa", "--model", miniLM, "--train", squad, "--validation", squad,
            "--out", out, "--epochs", "1", "--batch-size", "2", "--max-length", "32", "--doc-stride", "8",
        ])
        #expect(r.status == 0 && !r.crashed, "\(r.stderr)")
        #expect(r.stderr.contains("SQuAD 2.0") && r.stdout.contains("exact_match"))
        let settings =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/qa_settings.json")))
            as? [String: Any]
        #expect(settings?["doc_stride"] as? Int == 8 && settings?["version_2_with_negative"] as? Bool == true)
        let p = try runBertCLI(
            ["predict", "--model", out],
            stdin: Data("{\"id\": \"q\", \"question\": \"When?\", \"context\": \"\(context)\"}\n".utf8))
        #expect(p.status == 0, "\(p.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(p.stdout.utf8)) as? [String: Any])
        #expect(object["id"] as? String == "q")
        let answer = try #require(object["answer"] as? String), start = try #require(object["start"] as? Int),
            end = try #require(object["end"] as? Int)
        if !answer.isEmpty {
            #expect(String(String.UnicodeScalarView(Array(context.unicodeScalars)[start..<end])) == answer)
        }
        let e = try runBertCLI(["evaluate", "--model", out, "--data", squad])
        #expect(e.status == 0, "\(e.stderr)")
        let metrics = try #require(try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Double])
        #expect(
            metrics["questions"] == 3 && metrics["no_answer_accuracy"] != nil && (0...100).contains(metrics["f1"] ?? -1)
        )
        let bad = try runBertCLI(["predict", "--model", out], stdin: Data("not json\n".utf8))
        #expect(bad.status != 0 && !bad.crashed && bad.stderr.contains("line 1"), "\(bad.stderr)")
    }

    @Test func choicePredictEvaluate() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        var lines = ""
        for i in 0..<6 {
            lines +=
                "{\"context\": \"It rained all day, so Sam\", \"endings\": [\"took an umbrella.\", \"went swimming "
                + "\(i).\", \"ate the sun.\"], \"label\": 0}\n"
        }
        let train = try file("choice.jsonl", lines)
        let out = root.appendingPathComponent("choice").path
        let r = try runBertCLI([
            "finetune", "--task", "choice", "--model", miniLM, "--train", train, "--validation", train,
            "--out", out, "--epochs", "1", "--batch-size", "3", "--max-length", "32",
        ])
        #expect(r.status == 0 && !r.crashed, "\(r.stderr)")
        let p = try runBertCLI(
            ["predict", "--model", out],
            stdin: Data("{\"context\": \"A\", \"endings\": [\"b\", \"c\", \"d\", \"e\"]}\n".utf8))
        #expect(p.status == 0, "\(p.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(p.stdout.utf8)) as? [String: Any])
        let probabilities = try #require(object["probabilities"] as? [Double])
        #expect(probabilities.count == 4 && abs(probabilities.reduce(0, +) - 1) < 1e-6)
        let e = try runBertCLI(["evaluate", "--model", out, "--data", train])
        #expect(e.status == 0, "\(e.stderr)")
        let metrics = try #require(try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Double])
        #expect(metrics["questions"] == 6 && (0...1).contains(metrics["accuracy"] ?? -1))
    }

    /// `--epochs 0` writes the encoder with the head the seed initialises, untrained: the shared
    /// start of scripts/compare-finetune.sh.
    @Test func zeroEpochsWritesTheInitialisedModel() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let train = try file("train.txt", "John\tB-person\nvisited\tO\nParis\tB-geo-loc\n\n")
        let out = root.appendingPathComponent("init")
        let r = try runBertCLI([
            "finetune", "--task", "tag", "--model", miniLM, "--train", train, "--validation", train,
            "--out", out.path, "--epochs", "0", "--seed", "7",
        ])
        #expect(r.status == 0 && !r.crashed, "\(r.stderr)")
        #expect(
            !r.stdout.contains("epoch 1")
                && !FileManager.default.fileExists(atPath: out.appendingPathComponent("eval_history.json").path))
        let written = try BertForTokenClassification(folder: out)
        let labels = ["O", "B-geo-loc", "B-person"]
        #expect(written.labels == labels)
        let expected = try BertForTokenClassification.fromPretrained(
            folder: ModelFixtures.miniLMFolder, labels: labels, seed: 7
        ).model
        let other = try BertForTokenClassification.fromPretrained(
            folder: ModelFixtures.miniLMFolder, labels: labels, seed: 8
        ).model
        #expect(written.parameters.data.count == expected.parameters.data.count)
        let a = written.parameters.data, b = expected.parameters.data, c = other.parameters.data
        #expect(
            (0..<a.count).allSatisfy { a.pointer[$0] == b.pointer[$0] },
            "the written model is the seed's initialisation")
        #expect(!(0..<a.count).allSatisfy { a.pointer[$0] == c.pointer[$0] }, "another seed gives another head")
        let bad = try runBertCLI([
            "finetune", "--task", "tag", "--model", miniLM, "--train", train, "--validation", train,
            "--out", out.path, "--epochs", "-1",
        ])
        #expect(bad.status != 0 && !bad.crashed && bad.stderr.contains("--epochs"), "\(bad.stderr)")
    }

    @Test func badDataAndOptionsAreErrorsNotCrashes() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let good = try file("good.csv", "text,label\na,x\nb,y\n")
        let cases: [([String], String)] = [
            (["--train", try file("nolabel.csv", "text,label\na,x\nb,\n")], "nolabel.csv:3"),
            (["--train", try file("ragged.csv", "text,label\na,x\nb,y,z\n")], "ragged.csv:3"),
            (["--train", try file("one.csv", "text,label\na,x\nb,x\n")], "at least 2"),
            (["--train", good, "--validation", try file("unseen.csv", "text,label\na,z\n")], "unseen.csv:2"),
            (["--train", root.appendingPathComponent("missing.csv").path], "not found"),
            (["--train", good, "--task", "guess"], "'classify', 'regress', 'tag', 'qa' or 'choice'"),
        ]
        for (extra, message) in cases {
            // Each option once: the case's values replace the defaults.
            var options = [
                "--task": "classify", "--model": miniLM, "--validation": good,
                "--out": root.appendingPathComponent("o").path,
            ]
            for i in stride(from: 0, to: extra.count - 1, by: 2) { options[extra[i]] = extra[i + 1] }
            let args = ["finetune"] + options.keys.sorted().flatMap { [$0, options[$0]!] }
            let r = try runBertCLI(args)
            #expect(r.status != 0 && !r.crashed)
            #expect(r.stderr.contains(message), "\(extra): \(r.stderr)")
        }
        let p = try runBertCLI(["predict", "--model", miniLM], stdin: Data("x\n".utf8))
        #expect(p.status != 0 && !p.crashed && p.stderr.contains("classifier"), "\(p.stderr)")
        // --threads below 1 is refused by every command that computes, before any work.
        for args in [
            ["predict", "--model", miniLM], ["evaluate", "--model", miniLM, "--data", good],
            ["features", "--model", miniLM], ["embed", "--model", miniLM],
            [
                "finetune", "--task", "classify", "--model", miniLM, "--train", good, "--validation", good, "--out",
                root.appendingPathComponent("t").path,
            ],
            [
                "pretrain", "--preset", "tiny", "--corpus", "x.txt", "--vocab", "v.txt", "--out",
                root.appendingPathComponent("p").path,
            ],
        ] {
            let r = try runBertCLI(args + ["--threads", "0"], stdin: Data("x\n".utf8))
            #expect(
                r.status != 0 && !r.crashed && r.stderr.contains("--threads must be at least 1"),
                "\(args[0]): \(r.stderr)")
        }
    }
}
