import ArgumentParser
import BertTokenizer
import Foundation

struct LearnVocab: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vocab", abstract: "Learn a WordPiece vocabulary from a corpus.")
    func run() throws { throw CLIError("not yet") }
}
