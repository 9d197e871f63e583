"""Routing raw files (sluice_glue.file_routes), reading them as their catalog table describes them
(sluice_glue.raw_files), and typing nested values (transforms.conformed): small explicit inputs,
local Spark."""

from __future__ import annotations

import bz2
import gzip
import json

import pytest
from pyspark.sql import functions as F

from sluice_glue import catalog, file_routes, raw_files, transforms
from sluice_glue.raw_files import FileRoute, RawLayout

# --- pure rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "head", "how", "codec"), [
    ("t/a.csv", b"a,b\n", "spark", None),
    ("t/a.csv.gz", gzip.compress(b"a,b\n", mtime=0), "spark", None),  # Spark decompresses by the name
    ("t/2026/11/25/stream-1-abc", gzip.compress(b"{}\n", mtime=0), "stream", "gzip"),  # Firehose: no .gz
    ("t/export", bz2.compress(b"a,b\n"), "stream", "bzip2"),
    ("t/_part.csv", b"a,b\n", "stream", None),  # Spark skips names starting with _
    ("t/a//b.csv", b"a,b\n", "stream", None),  # Spark folds //
    ("t/at 10:00.csv", b"a,b\n", "stream", None),
    ("t/x[1].csv", b"a,b\n", "spark", None),  # glob characters are escaped instead
    ("t/export.bin", b"\x28\xb5\x2f\xfd" + b"\x00" * 8, "unreadable", "zstd"),
])
def test_each_file_is_read_the_way_it_can_be(key, head, how, codec):
    found = file_routes.route(0, key, f"/staged/{key}", "csv", head)
    assert (found.how, found.codec) == (how, codec)


def test_a_parquet_file_spark_cannot_name_is_unreadable_with_the_reason():
    found = file_routes.route(0, "t/_part.parquet", "/staged/t/_part.parquet", "parquet", None)
    assert found.how == "unreadable" and "rename the file" in found.reason


def test_glob_characters_are_escaped():
    assert file_routes.spark_path("s3://b/t/a[1]{x}*?.csv") == "s3://b/t/a\\[1\\]\\{x\\}\\*\\?.csv"


def test_a_quoted_header_name_may_hold_the_delimiter():
    assert raw_files.header_names('id;"amount; EUR";"note"', ";") == ["id", "amount; EUR", "note"]
    assert raw_files.header_names("a,,b", ",") is None and raw_files.header_names("a,A", ",") is None


def test_lines_split_as_hadoop_splits_them():
    chunks = [b"a,b\r", b"\n1,2\r3,4\n5,", b"6\xff\n", b"7,8"]
    assert list(file_routes.lines_of(chunks)) == ["a,b", "1,2", "3,4", "5,6\ufffd", "7,8"]


def test_a_stream_is_decompressed_member_by_member_and_a_truncated_one_refused():
    two_members = gzip.compress(b"a\n") + gzip.compress(b"b\n")
    assert b"".join(file_routes.decompressed([two_members[:7], two_members[7:]], "gzip")) == b"a\nb\n"
    with pytest.raises(ValueError, match="truncated gzip"):
        list(file_routes.decompressed([two_members[:-5]], "gzip"))
    with pytest.raises(ValueError, match="truncated bzip2"):
        list(file_routes.decompressed([bz2.compress(b"x" * 1000)[:-10]], "bzip2"))


@pytest.mark.parametrize("codec", ["gzip", "bzip2"])
def test_a_stream_is_decompressed_in_bounded_pieces_whatever_its_ratio(codec):
    # 24 MiB of zeros compress to a few KiB: one input chunk must not become 24 MiB in memory
    # (the gzip check reads every .gz file of a run through this on an executor).
    data = b"\0" * (24 << 20)
    packed = (gzip.compress(data[:1000], mtime=0) + gzip.compress(data, mtime=0) if codec == "gzip"
              else bz2.compress(data[:1000]) + bz2.compress(data))
    pieces = list(file_routes.decompressed([packed], codec))
    assert max(len(p) for p in pieces) <= file_routes.OUTPUT_BYTES
    assert sum(len(p) for p in pieces) == len(data) + 1000


def test_the_gzip_check_reads_with_the_same_decoder():
    whole = gzip.compress(b"a\n" * 1000, mtime=0) + gzip.compress(b"b\n", mtime=0)
    assert file_routes.gzip_problem([whole[:9], whole[9:]]) is None
    assert file_routes.gzip_problem([whole[:-5]]) == "truncated gzip stream (unexpected end of file)"
    assert file_routes.gzip_problem([whole + b"junk"]).startswith("corrupt gzip stream")


@pytest.mark.parametrize(("parameters", "serde", "header", "delimiter", "quote"), [
    ({"skip.header.line.count": "1"}, {"field.delim": ";"}, True, ";", '"'),
    ({}, {"field.delim": ","}, False, ",", '"'),
    ({"skip.header.line.count": "1"}, {"separatorChar": "\t", "quoteChar": "'"}, True, "\t", "'"),
])
def test_the_layout_comes_from_the_catalog_table(parameters, serde, header, delimiter, quote):
    table = catalog.table_input("t", "s3://raw/t/", [("a", "string")], [], "csv", parameters, serde)
    raw = raw_files.layout(table)
    assert (raw.header, raw.delimiter, raw.quote) == (header, delimiter, quote)
    assert raw_files.layout(table, "present").header and not raw_files.layout(table, "absent").header


def test_positional_columns_take_the_files_header_names_when_they_have_one():
    raw = RawLayout("csv", (("col0", "string"), ("col1", "string")), header=True)
    assert raw.by_position
    assert raw_files.effective_columns(raw, {1: ["Email", "name", "city"], 0: ["name", "email"]}) == [
        ("name", "string"), ("email", "string"), ("city", "string")]
    assert raw_files.effective_columns(RawLayout("csv", raw.columns), {0: ["a", "b"]}) == list(raw.columns)


# --- Spark -------------------------------------------------------------------------------------------

pytestmark = pytest.mark.spark


def _lines(spark, *lines: str):
    return spark.createDataFrame([(line,) for line in lines], "value string")


def test_json_keys_match_their_columns_whatever_their_case(spark):
    columns = [("orderid", "string"), ("customer", "struct<id:bigint>"), ("amount", "double")]
    rows = raw_files.json_columns(_lines(spark, '{"OrderId":"o-1","Customer":{"Id":7},"amount":1.5}', "  "),
                                  columns).collect()
    assert [r.asDict() for r in rows] == [
        {"orderid": "o-1", "customer": '{"Id":7}', "amount": "1.5", "_corrupt": None}]


@pytest.mark.parametrize("line", ['{"a":1}{"a":2}', '{"a":1} {"a":2}', '[{"a":1}]', '{"a":1,"A":2}', "{bad"])
def test_a_line_that_is_not_one_json_object_is_malformed_not_half_read(spark, line):
    [row] = raw_files.json_columns(_lines(spark, line), [("a", "bigint")]).collect()
    assert (row["a"], row["_corrupt"]) == (None, line)


def test_a_string_holding_braces_is_one_object(spark):
    [row] = raw_files.json_columns(_lines(spark, '{"a":"x}{y"}'), [("a", "string")]).collect()
    assert (row["a"], row["_corrupt"]) == ("x}{y", None)


def test_nested_values_are_typed_field_by_field_and_a_bad_leaf_is_a_reason(spark):
    hive_type = "struct<id:bigint,tags:array<string>,items:array<struct<sku:string,n:int>>,at:timestamp>"
    texts = ['{"Id":7,"TAGS":["a"],"items":[{"SKU":"x","n":2}],"at":"2026-11-25T14:00:00Z","extra":1}',
             '{"id":"seven","tags":[],"items":[{"sku":"y","n":"many"}]}',
             '"not an object"', None]
    df = spark.createDataFrame([(t,) for t in texts], "t string")
    value, problem = transforms.conformed(F.col("t"), hive_type, "order")
    rows = df.select(value.alias("v"), problem.alias("p")).collect()
    first = rows[0]["v"]
    item = first["items"][0]
    assert (first["id"], first["tags"], item["sku"], item["n"]) == (7, ["a"], "x", 2)
    assert str(first["at"]) == "2026-11-25 14:00:00" and rows[0]["p"] is None
    assert rows[1]["p"] == "not a bigint in order.id: seven"
    assert rows[2]["p"] == f'not a {hive_type} in order: "not an object"'
    assert (rows[3]["v"], rows[3]["p"]) == (None, None)
    assert df.select(value.alias("v")).schema["v"].dataType.simpleString() == hive_type


def test_maps_are_typed_by_key_and_value(spark):
    df = spark.createDataFrame([('{"1":"2.5","2":"x"}',), ('{"k":"1"}',)], "t string")
    value, problem = transforms.conformed(F.col("t"), "map<int,double>", "m")
    rows = df.select(value.alias("v"), problem.alias("p")).collect()
    assert rows[0]["p"] == "not a double in m[{}]: x" and rows[0]["v"][1] == 2.5
    assert rows[1]["p"] == 'a key that is not a int in m: {"k":"1"}' and rows[1]["v"] is None


def test_typed_keeps_nested_columns_and_quarantines_a_bad_one(spark):
    columns = [("id", "string"), ("device", "struct<name:string,readings:array<double>>")]
    raw = spark.createDataFrame([("a", '{"Name":"d1","readings":[1,2.5]}', None),
                                 ("b", '{"name":"d2","readings":["x"]}', None)],
                                transforms.raw_schema(columns))
    rows = {r["id"]: r for r in transforms.typed(raw, columns, None, []).collect()}
    assert rows["a"]["device"].asDict() == {"name": "d1", "readings": [1.0, 2.5]}
    assert rows["a"]["_bad_reason"] is None
    assert rows["b"]["_bad_reason"] == "not a double in device.readings[]: x"


def test_compressed_files_without_their_extension_are_streamed_and_read(spark, tmp_path):
    records = [{"Id": i, "device": {"Name": f"d{i}"}} for i in range(3)]
    lines = "".join(json.dumps(r) + "\n" for r in records)
    (tmp_path / "stream-1").write_bytes(gzip.compress(lines.encode()))
    (tmp_path / "cut").write_bytes(gzip.compress(b'{"id": 9}\n' * 1000)[:30])
    routes = [FileRoute(0, str(tmp_path / "stream-1"), "stream", "gzip"),
              FileRoute(1, str(tmp_path / "cut"), "stream", "gzip")]
    checked = file_routes.checked(spark, routes)
    assert checked[0] == (None, json.dumps(records[0])) and "truncated gzip" in checked[1][0]
    raw = RawLayout("json", (("id", "bigint"), ("device", "struct<name:string>")))
    rows = raw_files.read(spark, raw, list(raw.columns), routes[:1], {}, lambda df: df).orderBy("id")
    rows = rows.collect()
    assert [(r["_file"], r["id"], r["device"]) for r in rows] == [
        (0, str(i), json.dumps({"Name": f"d{i}"}, separators=(",", ":"))) for i in range(3)]


def test_csv_by_position_and_by_header_with_quotes_and_the_delimiter_inside(spark, tmp_path):
    (tmp_path / "dms.csv").write_text("I,1,\"a; b\"\nU,2,c\n")
    (tmp_path / "named.csv").write_text('note,"op, code",id\n"x, y",D,3\n')
    positional = RawLayout("csv", (("col0", "string"), ("col1", "bigint"), ("col2", "string")))
    rows = raw_files.read(spark, positional, list(positional.columns),
                          [FileRoute(0, str(tmp_path / "dms.csv"), "spark")], {}, lambda df: df).collect()
    assert sorted((r["col0"], r["col1"], r["col2"]) for r in rows) == [("I", "1", "a; b"), ("U", "2", "c")]
    headed = RawLayout("csv", (("op, code", "string"), ("id", "bigint"), ("note", "string")), header=True)
    names = {0: raw_files.header_names('note,"op, code",id', ",")}
    for how in ("spark", "stream"):
        route = FileRoute(0, str(tmp_path / "named.csv"), how)
        [row] = raw_files.read(spark, headed, list(headed.columns), [route], names,
                               lambda df: df.withColumn("_file", F.lit(0))).collect()
        assert (row["op, code"], row["id"], row["note"], row["_corrupt"]) == ("D", "3", "x, y", None), how


def test_reserved_names_are_read_as_raw_names(spark, tmp_path):
    (tmp_path / "a.csv").write_text("id,day,_file\n1,Mon,x\n")
    raw = RawLayout("csv", (("id", "bigint"), ("day", "string"), ("_file", "string")), header=True)
    renames = transforms.reserved_renames(["id", "day", "_file"])
    [row] = raw_files.read(spark, raw, list(raw.columns), [FileRoute(0, str(tmp_path / "a.csv"), "spark")],
                           {0: ["id", "day", "_file"]}, lambda df: df.withColumn("_file", F.lit(0)),
                           renames).collect()
    assert (row["id"], row["raw_day"], row["raw__file"], row["_file"]) == ("1", "Mon", "x", 0)
    with pytest.raises(transforms.ReservedNameError, match="'raw_day', the name it would be kept under"):
        transforms.reserved_renames(["day", "raw_day"])


def test_spark_cannot_cast_a_string_to_a_complex_type(spark):
    # The premise of transforms.conformed: reading every column as a string and casting it to
    # the catalog's type would fail each run for a struct or array column.
    from pyspark.errors import AnalysisException

    df = spark.createDataFrame([('{"a":1}',)], "t string")
    with pytest.raises(AnalysisException, match="DATATYPE_MISMATCH"):
        df.select(F.col("t").cast("struct<a:int>")).collect()
