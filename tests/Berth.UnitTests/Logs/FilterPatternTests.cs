using Berth.Logs.Filtering;
using FsCheck;
using FsCheck.Fluent;

namespace Berth.UnitTests.Logs;

public sealed class FilterPatternTests
{
    [Theory]
    [InlineData("", "anything", true)]
    [InlineData("ERROR", "[ERROR] disk full", true)]
    [InlineData("ERROR", "[error] disk full", false)] // case-sensitive, as CloudWatch
    [InlineData("ERROR disk", "[ERROR] disk full", true)]
    [InlineData("ERROR memory", "[ERROR] disk full", false)] // every term must occur
    [InlineData("\"disk full\"", "[ERROR] disk full", true)]
    [InlineData("\"full disk\"", "[ERROR] disk full", false)]
    [InlineData("?ERROR ?WARN", "WARN low memory", true)]
    [InlineData("?ERROR ?WARN", "INFO started", false)]
    [InlineData("ERROR -disk", "[ERROR] disk full", false)]
    [InlineData("ERROR -memory", "[ERROR] disk full", true)]
    [InlineData("-\"disk full\"", "[ERROR] disk full", false)]
    [InlineData("%ERR(OR)? [0-9]+%", "ERR 42 failed", true)]
    [InlineData("%^INFO%", "ERR 42 failed", false)]
    public void Terms_Match_AsCloudWatchDefinesThem(string pattern, string message, bool expected)
        => Assert.Equal(expected, FilterPattern.Parse(pattern).Matches(message));

    [Theory]
    [InlineData("{ $.level = \"error\" }", """{"level":"error"}""", true)]
    [InlineData("{ $.level = \"error\" }", """{"level":"info"}""", false)]
    [InlineData("{ $.level = error }", """{"level":"error"}""", true)]
    [InlineData("{ $.level != \"error\" }", """{"level":"info"}""", true)]
    [InlineData("{ $.level = \"err*\" }", """{"level":"error"}""", true)]
    [InlineData("{ $.path = \"*/users/*\" }", """{"path":"/api/users/7"}""", true)]
    [InlineData("{ $.status >= 400 }", """{"status":404}""", true)]
    [InlineData("{ $.status >= 400 }", """{"status":200}""", false)]
    [InlineData("{ $.status >= 400 }", """{"status":"404"}""", false)] // numeric comparisons need numbers
    [InlineData("{ $.status = 404 }", """{"status":404.0}""", true)]
    [InlineData("{ $.latency < 0.5 }", """{"latency":0.25}""", true)]
    [InlineData("{ $.level = \"error\" && $.status >= 500 }", """{"level":"error","status":503}""", true)]
    [InlineData("{ $.level = \"error\" && $.status >= 500 }", """{"level":"error","status":404}""", false)]
    [InlineData("{ $.level = \"error\" || $.status >= 500 }", """{"level":"info","status":503}""", true)]
    [InlineData("{ ($.a = 1 || $.b = 2) && $.c = 3 }", """{"a":1,"c":3}""", true)]
    [InlineData("{ ($.a = 1 || $.b = 2) && $.c = 3 }", """{"a":1,"c":4}""", false)]
    [InlineData("{ $.user.id = 7 }", """{"user":{"id":7}}""", true)]
    [InlineData("{ $.items[1] = \"b\" }", """{"items":["a","b"]}""", true)]
    [InlineData("{ $.missing NOT EXISTS }", """{"level":"x"}""", true)]
    [InlineData("{ $.level NOT EXISTS }", """{"level":"x"}""", false)]
    [InlineData("{ $.owner IS NULL }", """{"owner":null}""", true)]
    [InlineData("{ $.owner IS NULL }", """{"owner":"me"}""", false)]
    [InlineData("{ $.ok IS TRUE }", """{"ok":true}""", true)]
    [InlineData("{ $.level = \"error\" }", "level=error (not JSON)", false)]
    public void Json_Match_AsCloudWatchDefinesThem(string pattern, string message, bool expected)
        => Assert.Equal(expected, FilterPattern.Parse(pattern).Matches(message));

    [Theory]
    [InlineData("\"unterminated")]
    [InlineData("?")]
    [InlineData("ERROR ? WARN")]
    [InlineData("%[unclosed%")]
    [InlineData("%")]
    [InlineData("{ $.level = \"error\" ")]
    [InlineData("{ level = \"error\" }")]
    [InlineData("{ $.level }")]
    [InlineData("{ $.level = }")]
    [InlineData("{ $.level >= \"error\" }")]
    [InlineData("{ $.a = 1 && }")]
    [InlineData("{ $.a = 1 } trailing")]
    [InlineData("{ $.a IS MAYBE }")]
    [InlineData("{ $.items[x] = 1 }")]
    [InlineData("[ip, user]")]
    public void Parse_BadPattern_Throws(string pattern)
        => Assert.Throws<FormatException>(() => FilterPattern.Parse(pattern));

    private static readonly Gen<string> Word = Gen.Elements("alpha", "beta", "gamma", "delta", "ERROR", "WARN", "7", "x-y");

    [Fact]
    public void Terms_AnyMessage_TermMatchesIffContainedAndExclusionIsItsNegation()
    {
        Prop.ForAll(Word.ListOf().Select(l => string.Join(' ', l)).ToArbitrary(), Word.ToArbitrary(), (message, word) =>
        {
            var contained = message.Contains(word, StringComparison.Ordinal);
            Assert.Equal(contained, FilterPattern.Parse(word).Matches(message));
            Assert.Equal(!contained, FilterPattern.Parse("-" + word).Matches(message));
            Assert.Equal(contained, FilterPattern.Parse($"\"{word}\"").Matches(message));
            Assert.Equal(contained || message.Contains("delta", StringComparison.Ordinal), FilterPattern.Parse($"?{word} ?delta").Matches(message));
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(300));
    }
}
