package pggw

import (
	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATE codes the gateway itself answers with.
const (
	codeInvalidPassword         = "28P01" // invalid_password
	codeInvalidAuthSpec         = "28000" // invalid_authorization_specification
	codeInvalidCatalogName      = "3D000" // invalid_catalog_name
	codeProtocolViolation       = "08P01" // protocol_violation
	codeConnectionFailure       = "08006" // connection_failure
	codeAdminShutdown           = "57P01" // admin_shutdown
	codeCannotConnectNow        = "57P03" // cannot_connect_now
	codeSystemError             = "58000" // system_error
	codeProgramLimit            = "54000" // program_limit_exceeded
	codeFeatureNotSupp          = "0A000" // feature_not_supported
	codeInvalidCursorName       = "34000" // invalid_cursor_name
	codeInvalidSQLStatementName = "26000" // invalid_sql_statement_name
	codeDivisionByZero          = "22012" // division_by_zero (the gateway's check, bindStmt)
	codeWarning                 = "01000" // warning
)

// pgError is an error the gateway answers the client with itself.
type pgError struct {
	Severity string // "FATAL" or "ERROR"
	Code     string
	Message  string
	Detail   string
}

func (e *pgError) Error() string { return e.Code + " " + e.Message }

func fatal(code, msg string) *pgError { return &pgError{Severity: "FATAL", Code: code, Message: msg} }

// response is e's fields as a message.
func (e *pgError) response() pgproto3.ErrorResponse {
	return pgproto3.ErrorResponse{
		Severity: e.Severity, SeverityUnlocalized: e.Severity,
		Code: e.Code, Message: e.Message, Detail: e.Detail,
	}
}

// appendTo encodes e as an ErrorResponse.
func (e *pgError) appendTo(dst []byte) []byte {
	msg := e.response()
	out, err := msg.Encode(dst)
	if err != nil {
		// ErrorResponse encoding cannot fail for strings; keep dst as it was.
		return dst
	}
	return out
}

// appendReady encodes a ReadyForQuery with transaction status st.
func appendReady(dst []byte, st byte) []byte {
	return append(dst, 'Z', 0, 0, 0, 5, st)
}

// appendNotice encodes e as a NoticeResponse.
func (e *pgError) appendNotice(dst []byte) []byte {
	msg := pgproto3.NoticeResponse(e.response())
	out, err := msg.Encode(dst)
	if err != nil {
		return dst
	}
	return out
}

// retryLater reports whether an upstream's refusal of a login is one a
// client should retry shortly, and so is passed on as it came: too many
// connections (the server's, a role's or a database's limit) or a server
// starting up or shutting down.
func retryLater(code string) bool {
	switch code {
	case codeTooManyConnections, codeCannotConnectNow:
		return true
	}
	return false
}
