import ArgumentParser
import Bert
import BertCompute
import BertTokenizer
import Foundation

/// Labeled examples from a CSV, TSV or JSON Lines file.
func readExamples(_ path: String, columns: ColumnNames, requireLabel: Bool = true) throws -> [LabeledExample] {
    guard FileManager.default.fileExists(atPath: path) else { throw CLIError("\(path): file not found") }
    return try readLabeledExamples(URL(fileURLWithPath: path), columns: columns, requireLabel: requireLabel)
}

/// Writes `output` as the model folder `source` with new weights: every file but the weights
/// (config, tokenizer, sentence-transformers modules) copied, then `writeWeights(folder)`; the
/// whole folder replaced at once. Returns how many files were copied.
func rewriteWeights(of source: URL, into output: OutputFolder, _ writeWeights: (URL) throws -> Void) throws -> Int {
    let files = try FileManager.default.contentsOfDirectory(atPath: source.path).filter {
        !$0.hasPrefix(".") && !ModelWeights.isWeightsFile($0)
    }
    try output.replace { folder in
        for name in files.sorted() {
            let from = source.appendingPathComponent(name), to = folder.appendingPathComponent(name)
            do { try FileManager.default.copyItem(at: from, to: to) } catch {
                throw BertError.fileAccess(
                    path: from.path, reason: "cannot copy: \(fileErrorReason(error, path: from.path))")
            }
        }
        try writeWeights(folder)
    }
    return files.count
}
