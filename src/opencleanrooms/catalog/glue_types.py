"""DuckDB column types -> the Glue/Hive type names AWS Clean Rooms reports in schemas.

| DuckDB | Glue |
|---|---|
| VARCHAR (also JSON), UUID, ENUM, TIME, TIME WITH TIME ZONE, INTERVAL, "NULL" | string |
| BOOLEAN | boolean |
| TINYINT / SMALLINT / INTEGER / BIGINT | tinyint / smallint / int / bigint |
| UTINYINT / USMALLINT / UINTEGER (widened so that every value fits) | smallint / int / bigint |
| UBIGINT | decimal(20,0) |
| HUGEINT, UHUGEINT, BIGNUM (VARINT) | decimal(38,0) |
| FLOAT / DOUBLE | float / double |
| DECIMAL(p,s) | decimal(p,s) |
| DATE | date |
| TIMESTAMP, TIMESTAMP_S/_MS/_NS, TIMESTAMP WITH TIME ZONE | timestamp |
| BLOB, BIT | binary |
| T[] and T[n] | array<T> |
| STRUCT(a T, ...) | struct<a:T,...> |
| MAP(K, V) | map<K,V> |

UNION has no Glue equivalent and makes the table unreadable.
"""

from __future__ import annotations

_SCALARS = {
    "varchar": "string",
    "uuid": "string",
    "enum": "string",
    "time": "string",
    "time with time zone": "string",
    "time_ns": "string",
    "interval": "string",
    '"null"': "string",
    "null": "string",
    "boolean": "boolean",
    "tinyint": "tinyint",
    "smallint": "smallint",
    "integer": "int",
    "bigint": "bigint",
    "utinyint": "smallint",
    "usmallint": "int",
    "uinteger": "bigint",
    "ubigint": "decimal(20,0)",
    "hugeint": "decimal(38,0)",
    "uhugeint": "decimal(38,0)",
    "bignum": "decimal(38,0)",
    "varint": "decimal(38,0)",
    "float": "float",
    "double": "double",
    "date": "date",
    "timestamp": "timestamp",
    "timestamp_s": "timestamp",
    "timestamp_ms": "timestamp",
    "timestamp_ns": "timestamp",
    "timestamp with time zone": "timestamp",
    "blob": "binary",
    "bit": "binary",
}


class UnsupportedType(Exception):
    """A DuckDB type with no Glue equivalent."""


def glue_type(duck_type) -> str:
    """The Glue type name of a DuckDB type (a `duckdb.DuckDBPyType`). Raises UnsupportedType."""
    type_id = str(duck_type.id).lower()
    if type_id in _SCALARS:
        return _SCALARS[type_id]
    if type_id == "decimal":
        children = dict(duck_type.children)
        return f"decimal({children['precision']},{children['scale']})"
    if type_id in ("list", "array"):
        return f"array<{glue_type(dict(duck_type.children)['child'])}>"
    if type_id == "struct":
        return "struct<" + ",".join(f"{name}:{glue_type(child)}" for name, child in duck_type.children) + ">"
    if type_id == "map":
        children = dict(duck_type.children)
        return f"map<{glue_type(children['key'])},{glue_type(children['value'])}>"
    raise UnsupportedType(str(duck_type))


def arrow_glue_type(arrow_type) -> str:
    """The Glue type name of an Arrow type (a `pyarrow.DataType`), for tables this server writes itself
    (intermediate tables). Types without a Glue equivalent are reported as string."""
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_boolean(t):
        return "boolean"
    for check, name in ((pa.types.is_int8, "tinyint"), (pa.types.is_int16, "smallint"), (pa.types.is_int32, "int"),
                        (pa.types.is_int64, "bigint"), (pa.types.is_uint8, "smallint"), (pa.types.is_uint16, "int"),
                        (pa.types.is_uint32, "bigint"), (pa.types.is_uint64, "decimal(20,0)"),
                        (pa.types.is_float16, "float"), (pa.types.is_float32, "float"),
                        (pa.types.is_float64, "double"), (pa.types.is_date, "date"),
                        (pa.types.is_timestamp, "timestamp")):
        if check(t):
            return name
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "binary"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return f"array<{arrow_glue_type(t.value_type)}>"
    if pa.types.is_map(t):
        return f"map<{arrow_glue_type(t.key_type)},{arrow_glue_type(t.item_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{t.field(i).name}:{arrow_glue_type(t.field(i).type)}"
                                    for i in range(t.num_fields)) + ">"
    return "string"
