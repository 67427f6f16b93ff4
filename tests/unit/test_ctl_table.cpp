#include "ctl/table.hpp"

#include <gtest/gtest.h>

#include "ctl/render.hpp"

using namespace gitopper::ctl;

TEST(CtlTable, ColumnsAlignToTheWidestCell)
{
    Table table({"#", "SERVICE", "HASH", "STATE", "INFO", "SINCE"});
    table.add_row({"0", "grafana-server", "606eb576", "OK", "", "Fri, 18 Nov 2022 09:14:52 UTC"});
    EXPECT_EQ(table.render(),
              "#  SERVICE         HASH      STATE  INFO  SINCE\n"
              "0  grafana-server  606eb576  OK           Fri, 18 Nov 2022 09:14:52 UTC\n");
}

TEST(CtlTable, NoTrailingBlanksWhenTheLastCellIsEmpty)
{
    Table table({"A", "B"});
    table.add_row({"long value", ""});
    EXPECT_EQ(table.render(), "A           B\nlong value\n");
}

TEST(CtlTable, WidthCountsCharactersNotBytes)
{
    Table table({"X", "Y"});
    table.add_row({"\xc3\xa9t\xc3\xa9", "1"}); // "été": 3 columns, 5 bytes
    table.add_row({"abc", "2"});
    EXPECT_EQ(table.render(), "X    Y\n\xc3\xa9t\xc3\xa9  1\nabc  2\n");
    EXPECT_EQ(display_width("\xc3\xa9t\xc3\xa9"), 3u);
}

TEST(CtlTable, ControlCharactersBecomeSpaces)
{
    Table table({"INFO", "END"});
    table.add_row({"git: error\nfatal: \x1b[31mbad", "x"});
    EXPECT_EQ(table.render(), "INFO                        END\n"
                              "git: error fatal:  [31mbad  x\n");
}

TEST(CtlRender, ServicesShortenTheHash)
{
    const auto rows = rows_of(
        Listing::services,
        R"({"services":[{"service":"app","hash":"0123456789abcdef0123","state":"FREEZE",)"
        R"("stateinfo":"ROLLBACK: 01234567","change":"Mon, 02 Jan 2006 15:04:05 UTC","branch":"main"}]})");
    ASSERT_TRUE(rows);
    EXPECT_EQ(*rows, (std::vector<Row>{{"app", "01234567", "FREEZE", "ROLLBACK: 01234567",
                                        "Mon, 02 Jan 2006 15:04:05 UTC"}}));
}

TEST(CtlRender, MissingFieldsAreEmpty)
{
    const auto rows = rows_of(Listing::history, R"({"history":[{"time":"T","to":"abc","n":1}]})");
    ASSERT_TRUE(rows);
    EXPECT_EQ(*rows, (std::vector<Row>{{"T", "", "abc", "", ""}}));
}

TEST(CtlRender, UnexpectedReplies)
{
    EXPECT_EQ(rows_of(Listing::services, "OK").error().message, "the reply is not a JSON object");
    EXPECT_EQ(rows_of(Listing::machines, R"({"services":[]})").error().message,
              "the reply has no \"machines\" list");
    EXPECT_EQ(rows_of(Listing::machines, R"({"machines":[1]})").error().message,
              "an entry of \"machines\" is not an object");
}

TEST(CtlRender, OneHostHasNoMachineColumn)
{
    const std::vector<Answer> answers{{"web1", {{"testhost", "web1.example.org"}}}};
    EXPECT_EQ(render_listing(Listing::machines, answers, false),
              "#  MACHINE   ACTUAL\n0  testhost  web1.example.org\n");
}

TEST(CtlRender, SeveralHostsAddAColumnAndNumberOnAcrossHosts)
{
    const std::vector<Answer> answers{
        {"web1", {{"app", "01234567", "OK", "", "T1"}}},
        {"web2:2300", {{"app", "89abcdef", "FREEZE", "", "T2"}, {"db", "", "DIFF", "x", "T3"}}},
    };
    EXPECT_EQ(render_listing(Listing::services, answers, true),
              "#  MACHINE    SERVICE  HASH      STATE   INFO  SINCE\n"
              "0  web1       app      01234567  OK            T1\n"
              "1  web2:2300  app      89abcdef  FREEZE        T2\n"
              "2  web2:2300  db                 DIFF    x     T3\n");
}

TEST(CtlRender, MachinesOfSeveralHostsSayHost)
{
    const std::vector<Answer> answers{{"web1", {{"a", "b"}}}, {"web2", {}}};
    EXPECT_EQ(render_listing(Listing::machines, answers, true),
              "#  HOST  MACHINE  ACTUAL\n0  web1  a        b\n");
}

TEST(CtlRender, HistoryHeader)
{
    EXPECT_EQ(render_listing(Listing::history, {}, false), "#  TIME  FROM  TO  TRIGGER  RESULT\n");
}

TEST(CtlRender, TaggedJsonAddsTheHost)
{
    EXPECT_EQ(tagged_json("web1", R"({"machines":[]})").value(),
              R"({"host":"web1","machines":[]})");
    EXPECT_FALSE(tagged_json("web1", "[1]"));
}

TEST(CtlRenderDiff, CommitsFilesActionAndTheDiff)
{
    const auto body = R"({"service":"nginx","deployed":"1a2b3c4d5e6f","upstream":"5e6f7a8b9c0d",)"
                      R"("state":"OK","commits":[{"hash":"5e6f7a8b9c0d","author":"Alice",)"
                      R"("subject":"raise worker_connections"}],"more_commits":false,)"
                      R"("files":[{"status":"M","path":"nginx/nginx.conf"}],)"
                      R"("diff":"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n",)"
                      R"("truncated":true,"action":"systemctl reload nginx","note":""})";
    auto plain = gitopper::ctl::render_diff(body, false);
    ASSERT_TRUE(plain) << plain.error().message;
    EXPECT_NE(plain->find("nginx: deployed 1a2b3c4d, upstream 5e6f7a8b\n"), std::string::npos);
    EXPECT_NE(plain->find("1 commit:\n  5e6f7a8b  raise worker_connections  (Alice)\n"),
              std::string::npos)
        << *plain;
    EXPECT_NE(plain->find("  M  nginx/nginx.conf\n"), std::string::npos);
    EXPECT_NE(plain->find("action: systemctl reload nginx\n"), std::string::npos);
    EXPECT_NE(plain->find("\n-old\n+new\n"), std::string::npos);
    EXPECT_NE(plain->find("[diff truncated"), std::string::npos);
    EXPECT_EQ(plain->find('\x1b'), std::string::npos);
    auto coloured = gitopper::ctl::render_diff(body, true);
    EXPECT_NE(coloured->find("\x1b[31m-old\x1b[m"), std::string::npos);
    EXPECT_NE(coloured->find("\x1b[32m+new\x1b[m"), std::string::npos);
    EXPECT_NE(coloured->find("\x1b[36m@@ -1 +1 @@\x1b[m"), std::string::npos);
    EXPECT_FALSE(gitopper::ctl::render_diff("[]", false));
}
