using Berth.Registry.Lifecycle;

namespace Berth.UnitTests.Registry;

/// <summary>What PutLifecyclePolicy refuses, and that the message names the offending part.</summary>
public sealed class LifecyclePolicyValidationTests
{
    private const string Expire = "\"action\":{\"type\":\"expire\"}";
    private const string Count = "\"countType\":\"imageCountMoreThan\",\"countNumber\":1";

    private static string One(string selection, string action = Expire, string extra = "")
        => $$"""{"rules":[{"rulePriority":1{{extra}},"selection":{{{selection}}},{{action}}}]}""";

    public static TheoryData<string, string> Invalid => new()
    {
        { "not json", "not valid JSON" },
        { "[]", "JSON object" },
        { "{}", "rules: missing required property" },
        { """{"rules":[]}""", "at least one rule" },
        { """{"rules":{}}""", "rules: must be an array" },
        { """{"rules":[],"extra":1}""", "extra: unknown property" },
        { """{"rules":[1]}""", "rules[0]: must be an object" },
        { """{"rules":[{"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}""", "rules[0].rulePriority: missing" },
        { """{"rules":[{"rulePriority":"1","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}""", "rules[0].rulePriority: must be an integer" },
        { """{"rules":[{"rulePriority":0,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}""", "rules[0].rulePriority: must be a positive integer" },
        { One("\"tagStatus\":\"any\"," + Count, extra: ",\"description\":5"), "rules[0].description: must be a string" },
        { One("\"tagStatus\":\"any\"," + Count, extra: ",\"name\":\"x\""), "rules[0].name: unknown property" },
        { One("\"tagStatus\":\"all\"," + Count), "rules[0].selection.tagStatus: 'all'" },
        { One(Count), "rules[0].selection.tagStatus: missing" },
        { One("\"tagStatus\":\"tagged\"," + Count), "requires a tagPrefixList or a tagPatternList" },
        { One("\"tagStatus\":\"untagged\",\"tagPrefixList\":[\"v\"]," + Count), "only be used with tagStatus \"tagged\"" },
        { One("\"tagStatus\":\"tagged\",\"tagPrefixList\":[\"v\"],\"tagPatternList\":[\"v*\"]," + Count), "not both" },
        { One("\"tagStatus\":\"tagged\",\"tagPrefixList\":[]," + Count), "rules[0].selection.tagPrefixList: must be a non-empty list" },
        { One("\"tagStatus\":\"tagged\",\"tagPatternList\":[\"\"]," + Count), "rules[0].selection.tagPatternList[0]: must be a non-empty string" },
        { One("\"tagStatus\":\"tagged\",\"tagPatternList\":[\"a*b*c*d*e*\"]," + Count), "more than 4 wildcards" },
        { One("\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\",\"countNumber\":0"), "rules[0].selection.countNumber: must be a positive integer" },
        { One("\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\",\"countNumber\":1.5"), "rules[0].selection.countNumber: must be an integer" },
        { One("\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\""), "rules[0].selection.countNumber: missing" },
        { One("\"tagStatus\":\"any\",\"countType\":\"newest\",\"countNumber\":1"), "rules[0].selection.countType: 'newest'" },
        { One("\"tagStatus\":\"any\",\"countType\":\"sinceImagePushed\",\"countNumber\":1"), "rules[0].selection.countUnit: required" },
        { One("\"tagStatus\":\"any\",\"countType\":\"sinceImagePushed\",\"countUnit\":\"hours\",\"countNumber\":1"), "rules[0].selection.countUnit" },
        { One("\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\",\"countUnit\":\"days\",\"countNumber\":1"), "only allowed with countType sinceImagePushed" },
        { One("\"tagStatus\":\"any\",\"countType\":\"sinceImagePulled\",\"countUnit\":\"days\",\"countNumber\":1"), "archive" },
        { One("\"tagStatus\":\"any\"," + Count, action: "\"action\":{\"type\":\"delete\"}"), "rules[0].action.type: 'delete'" },
        { One("\"tagStatus\":\"any\"," + Count, action: "\"action\":{\"type\":\"transition\",\"targetStorageClass\":\"archive\"}"), "not supported" },
        { One("\"tagStatus\":\"any\"," + Count, action: "\"action\":{}"), "rules[0].action.type: missing" },
        {
            """{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}""",
            "rulePriority 1 is used by more than one rule"
        },
        {
            """{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},{"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}""",
            "\"any\" (rulePriority 1) must have the highest rulePriority"
        },
        {
            """{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},{"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}""",
            "only one rule may select untagged images"
        },
        {
            """{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["a","b"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},{"rulePriority":2,"selection":{"tagStatus":"tagged","tagPrefixList":["b","a"],"countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}""",
            "select the same tags"
        },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Parse_InvalidPolicy_NamesWhatIsWrong(string text, string mentions)
    {
        var e = Assert.Throws<LifecyclePolicyException>(() => LifecyclePolicy.Parse(text));
        Assert.Contains(mentions, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_ValidPolicy_SortsRulesByPriorityAndKeepsEveryField()
    {
        var policy = LifecyclePolicy.Parse("""
            {"rules":[
              {"rulePriority":20,"description":"keep 3","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":3},"action":{"type":"expire"}},
              {"rulePriority":5,"selection":{"tagStatus":"tagged","tagPatternList":["prod*","*-*"],"storageClass":"standard","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}},
              {"rulePriority":7,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}
            ]}
            """);
        Assert.Equal([5, 7, 20], policy.Rules.Select(r => r.Priority));
        var tagged = policy.Rules[0];
        Assert.Equal(("tagged", "sinceImagePushed", 14), (tagged.TagStatus, tagged.CountType, tagged.CountNumber));
        Assert.Equal(["prod*", "*-*"], tagged.TagPatterns);
        Assert.Equal("keep 3", policy.Rules[2].Description);
    }

    [Fact]
    public void Parse_PrefixAndPatternRulesWithTheSameText_AreDistinctSelections()
        => Assert.Equal(2, LifecyclePolicy.Parse("""
            {"rules":[
              {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
              {"rulePriority":2,"selection":{"tagStatus":"tagged","tagPatternList":["v"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}
            ]}
            """).Rules.Count);
}
